"""Departments and the site's address plan, graded systems, hosts and agents."""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Query
from pydantic import AwareDatetime
from sqlmodel import col, select

from ...store.models import AddressBlock, Agent, Department, Host, System, UtilisationSample
from .. import address_plan, operations
from ..deps import DB, AgentId, Caller, Ctx, Id, Limit, Offset, OptId, SourceIp, page, visible, where_given
from ..problems import DocumentedRoute, problem
from ..schemas import (
    AddressBlockIn,
    AddressBlockOut,
    AgentOut,
    AgentRevokeIn,
    DepartmentIn,
    DepartmentOut,
    HostOut,
    SystemIn,
    SystemOut,
    SystemPatch,
    UtilisationOut,
)

router = APIRouter(tags=["directory"], route_class=DocumentedRoute)  # error answers in the OpenAPI document


# ---- departments ---------------------------------------------------------------------------------


@router.get("/departments", response_model=list[DepartmentOut])
def list_departments(db: DB, p: Caller, limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(Department), col(Department.id)).order_by(col(Department.id))
        return s.exec(page(stmt, limit, offset)).all()


@router.post("/departments", status_code=201, response_model=DepartmentOut,
             responses={409: problem(409, "a department of that name exists")})
def create_department(spec: DepartmentIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        return operations.create_department(Ctx(s, p, ip), spec.name, spec.title)


@router.get("/departments/{department_id}", response_model=DepartmentOut)
def get_department(department_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, Department, department_id, "department", department="id")


# ---- the address plan (admin) --------------------------------------------------------------------


@router.get("/address-plan", response_model=list[AddressBlockOut])
def list_address_plan(db: DB, p: Caller, department_id: OptId = None, limit: Limit = 1000, offset: Offset = 0):
    """The network blocks assigned to the caller's departments (an admin: the whole plan); every system's
    scan_scope lies inside its department's blocks. Only an admin changes the plan."""
    with db.session() as s:
        stmt = p.scoped(select(AddressBlock), col(AddressBlock.department_id))
        stmt = stmt.order_by(col(AddressBlock.department_id), col(AddressBlock.id))
        stmt = where_given(stmt, (AddressBlock.department_id, department_id))
        return s.exec(page(stmt, limit, offset)).all()


@router.post("/address-plan", status_code=201, response_model=AddressBlockOut,
             responses={409: problem(409, "the block overlaps another department's, or is already in the plan")})
def add_address_block(spec: AddressBlockIn, db: DB, p: Caller, ip: SourceIp):
    """Assign a network block to a department (admin)."""
    with db.session(write=True) as s:
        return address_plan.add_block(Ctx(s, p, ip), spec.department_id, spec.cidr, spec.note)


@router.delete("/address-plan/{block_id}", response_model=AddressBlockOut,
               responses={409: problem(409, "a system's scan_scope still lies in the block")})
def remove_address_block(block_id: Id, db: DB, p: Caller, ip: SourceIp):
    """Take a block out of the plan (admin); refused while a system's scope needs it."""
    with db.session(write=True) as s:
        return address_plan.remove_block(Ctx(s, p, ip), block_id)


# ---- systems -------------------------------------------------------------------------------------


@router.get("/systems", response_model=list[SystemOut])
def list_systems(db: DB, p: Caller, department_id: OptId = None, level: Optional[int] = Query(None, ge=2, le=4),
                 limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(System), col(System.department_id)).order_by(col(System.id))
        stmt = where_given(stmt, (System.department_id, department_id), (System.level, level))
        return s.exec(page(stmt, limit, offset)).all()


@router.post("/systems", status_code=201, response_model=SystemOut,
             responses={409: problem(409, "a system of that name exists")})
def create_system(spec: SystemIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        return operations.create_system(Ctx(s, p, ip), spec)


@router.get("/systems/{system_id}", response_model=SystemOut)
def get_system(system_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return operations.visible_system(Ctx(s, p), system_id)


@router.patch("/systems/{system_id}", response_model=SystemOut)
def update_system(system_id: Id, patch: SystemPatch, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        return operations.update_system(Ctx(s, p, ip), system_id, patch)


# ---- hosts ---------------------------------------------------------------------------------------


@router.get("/hosts", response_model=list[HostOut])
def list_hosts(db: DB, p: Caller, system_id: OptId = None, department_id: OptId = None,
               limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(Host), col(Host.department_id)).order_by(col(Host.id))
        stmt = where_given(stmt, (Host.system_id, system_id), (Host.department_id, department_id))
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/hosts/{host_id}", response_model=HostOut)
def get_host(host_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, Host, host_id, "host")


@router.get("/hosts/{host_id}/utilisation", response_model=list[UtilisationOut])
def list_utilisation(host_id: Id, db: DB, p: Caller, since: Optional[AwareDatetime] = None, limit: Limit = 1000,
                     offset: Offset = 0):
    """Utilisation samples of a host, newest first (for spotting systems nobody uses any more)."""
    with db.session() as s:
        visible(s, p, Host, host_id, "host")
        stmt = select(UtilisationSample).where(UtilisationSample.host_id == host_id)
        if since is not None:
            stmt = stmt.where(UtilisationSample.at >= since)
        return s.exec(page(stmt.order_by(col(UtilisationSample.at).desc(), col(UtilisationSample.id).desc()),
                           limit, offset)).all()


# ---- agents --------------------------------------------------------------------------------------


@router.get("/agents", response_model=list[AgentOut])
def list_agents(db: DB, p: Caller, system_id: OptId = None, host_id: OptId = None,
                state: Optional[Literal["enrolled", "revoked"]] = None, limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(Agent), col(Agent.department_id))
        stmt = stmt.order_by(col(Agent.enrolled_at), col(Agent.id))
        stmt = where_given(stmt, (Agent.system_id, system_id), (Agent.host_id, host_id), (Agent.state, state))
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/agents/{agent_id}", response_model=AgentOut)
def get_agent(agent_id: AgentId, db: DB, p: Caller):
    with db.session() as s:
        return operations.visible_agent(Ctx(s, p), agent_id)


@router.post("/agents/{agent_id}/revoke", response_model=AgentOut)
def revoke_agent(agent_id: AgentId, spec: AgentRevokeIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        return operations.revoke_agent(Ctx(s, p, ip), agent_id, spec.reason)
