"""The site's address plan: which network blocks the cloud has assigned to which department.

Only an admin keeps the plan (REST `/address-plan`, `sentinel address-plan`). It bounds every scan scope:
- a system's scan_scope may only be set (created or changed, by anyone, admin included) to networks inside
  its department's blocks;
- a scan (triggered or scheduled) of a system whose stored scope is not inside the plan any more (a scope
  from before the plan existed, or a block removed later) is refused before any packet, naming the
  addresses outside it. Nothing is cut from a stored scope behind anyone's back: the admin fixes the plan
  or the scope.
Blocks of different departments never overlap, so an address belongs to one department or to none.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import text
from sqlmodel import Session, col, select

from ..store.models import AddressBlock, Department, System
from .auth import ADMIN
from .errors import ApiError, not_found

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutsidePlan(ValueError):
    """A scope that reaches addresses not assigned to its department."""


def _net(cidr: str) -> Network:
    return ipaddress.ip_network(cidr, strict=False)


def department_blocks(conn_or_session, department_id: int) -> list[Network]:
    rows = conn_or_session.execute(select(AddressBlock.cidr).where(AddressBlock.department_id == department_id))
    return [_net(c) for (c,) in rows]


def _within(net: Network, block: Network) -> bool:
    """Whether net lies inside block; False across IP versions (where subnet_of would raise TypeError)."""
    if isinstance(net, ipaddress.IPv4Network):
        return isinstance(block, ipaddress.IPv4Network) and net.subnet_of(block)
    return isinstance(block, ipaddress.IPv6Network) and net.subnet_of(block)


def outside(scope: Iterable[str], blocks: list[Network]) -> list[str]:
    """The networks of `scope` not inside any one of `blocks`."""
    out = []
    for cidr in scope:
        net = _net(cidr)
        if not any(_within(net, b) for b in blocks):
            out.append(str(net))
    return out


def check_scope(conn_or_session, department_id: int, department: str, scope: list[str]) -> None:
    """Raise OutsidePlan unless every network of `scope` lies inside one of the department's blocks."""
    if not scope:
        return
    blocks = department_blocks(conn_or_session, department_id)
    bad = outside(scope, blocks)
    if bad:
        assigned = ", ".join(sorted(str(b) for b in blocks)) or "none"
        raise OutsidePlan(f"scan_scope {', '.join(bad)} is outside the address plan of department {department} "
                          f"(its blocks: {assigned}); an admin assigns blocks with `sentinel address-plan add` "
                          "or POST /api/v1/address-plan")


def _lock_plan(session: Session, change: bool) -> None:
    """Serialise the plan's checks with its changes on PostgreSQL, so two transactions cannot both pass an
    overlap check, or a scope be written inside a block being removed (SQLite writers take turns anyway).
    SHARE for a scope check (many at once), SHARE ROW EXCLUSIVE for a change of the plan."""
    if session.get_bind().dialect.name == "postgresql":
        mode = "SHARE ROW EXCLUSIVE" if change else "SHARE"
        session.execute(text(f"LOCK TABLE {AddressBlock.__tablename__} IN {mode} MODE"))


def require_inside(session: Session, department_id: int, scope: list[str]) -> None:
    """check_scope for a write: a 422 naming the networks outside the plan."""
    if scope:
        _lock_plan(session, change=False)
    dept = session.get(Department, department_id)
    try:
        check_scope(session, department_id, dept.name if dept else str(department_id), scope)
    except OutsidePlan as exc:
        raise ApiError(422, str(exc)) from None


def systems_outside(session: Session) -> list[tuple[System, list[str]]]:
    """Systems whose stored scope reaches outside their department's blocks, with those networks: after an
    upgrade to migration 0005, the systems that are not scanned until an admin fixes the plan or the scope."""
    blocks: dict[int, list[Network]] = {}
    for b in session.exec(select(AddressBlock)).all():
        blocks.setdefault(b.department_id, []).append(_net(b.cidr))
    out = []
    for system in session.exec(select(System).order_by(col(System.id))).all():
        bad = outside(system.scan_scope or [], blocks.get(system.department_id, []))
        if bad:
            out.append((system, bad))
    return out


# ---- keeping the plan (admin) ---------------------------------------------------------------------------


def list_blocks(session: Session, department_id: int | None = None) -> list[AddressBlock]:
    stmt = select(AddressBlock).order_by(col(AddressBlock.department_id), col(AddressBlock.id))
    if department_id is not None:
        stmt = stmt.where(AddressBlock.department_id == department_id)
    return list(session.exec(stmt).all())


def add_block(ctx, department_id: int, cidr: str, note: str = "") -> AddressBlock:
    """Assign `cidr` (already normalised) to a department; 409 if it overlaps another department's block
    or is already in the plan."""
    ctx.principal.require(ADMIN)
    dept = ctx.session.get(Department, department_id)
    if dept is None:
        raise not_found("department", department_id)
    net = _net(cidr)
    _lock_plan(ctx.session, change=True)
    for other in ctx.session.exec(select(AddressBlock)).all():
        theirs = _net(other.cidr)
        if theirs.version == net.version and net.overlaps(theirs):
            if other.department_id != department_id:
                owner = ctx.session.get(Department, other.department_id)
                raise ApiError(409, f"{cidr} overlaps block {other.cidr} of department "
                                    f"{owner.name if owner else other.department_id}: an address belongs to "
                                    "one department")
            if theirs == net:
                raise ApiError(409, f"{cidr} is already in the address plan of department {dept.name}")
    block = AddressBlock(department_id=department_id, cidr=str(net), note=note, created_by=ctx.principal.actor,
                         created_at=datetime.now(timezone.utc))
    ctx.session.add(block)
    ctx.session.flush()
    ctx.audit("address_plan.add", f"address_block:{block.id}:{block.cidr}",
              f"department {dept.name}" + (f", {note}" if note else ""))
    return block


def remove_block(ctx, block_id: int) -> AddressBlock:
    """Take a block out of the plan; 409 while a system's scope of that department still needs it."""
    ctx.principal.require(ADMIN)
    _lock_plan(ctx.session, change=True)
    block = ctx.session.get(AddressBlock, block_id)
    if block is None:
        raise not_found("address block", block_id)
    dept = ctx.session.get(Department, block.department_id)
    rest = [_net(b.cidr) for b in ctx.session.exec(select(AddressBlock).where(
        AddressBlock.department_id == block.department_id, AddressBlock.id != block_id)).all()]
    relying = [s.name for s in ctx.session.exec(select(System).where(System.department_id == block.department_id)
                                                .order_by(System.id)).all()
               if outside(s.scan_scope, rest) and not outside(s.scan_scope, rest + [_net(block.cidr)])]
    if relying:
        raise ApiError(409, f"block {block.cidr} is still in the scan_scope of system(s) {', '.join(relying)}: "
                            "narrow their scope first")
    gone = AddressBlock.model_validate(block.model_dump())  # the row as it was, for the answer
    ctx.session.delete(block)
    ctx.session.flush()
    ctx.audit("address_plan.remove", f"address_block:{block_id}:{gone.cidr}",
              f"department {dept.name if dept else gone.department_id}")
    return gone
