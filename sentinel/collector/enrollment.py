"""Agent enrollment: a one-time, expiring token bound to a system, exchanged for an agent id.

The agent proves it holds the private key of the public key it registers: it signs the enrollment
challenge (signing.enrollment_challenge: this token, this collector's key, the hostname, the public
key), and weak keys (small-order, non-canonical) are refused outright (sentinel/signing.py).

Host identity is explicit: a hostname the system already knows is refused (409) unless an admin issued
the token for re-enrolling that very host (enrollment_tokens.reenroll_hostname). Then the host keeps
its history and its previous agents are revoked (one live key per host, so a lost or copied old key
stops working the moment the new one is registered), all audited.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import signing
from ..store.db import Database
from ..store.models import Agent, Department, EnrollmentToken, Host, System
from . import audit
from .auth import hash_secret
from .ingest import Refused
from .wire import EnrollRequest, EnrollResponse

T_TOKEN, T_AGENT, T_HOST = EnrollmentToken.__table__, Agent.__table__, Host.__table__
T_SYSTEM, T_DEPT = System.__table__, Department.__table__

PROOF_RECIPE = (f"base64 Ed25519 signature of SHA-256({signing.ENROLL_CONTEXT.decode()!r} NUL hex SHA-256(token) NUL "
                "collector_public_key NUL hostname NUL public_key)")


def enroll(db: Database, req: EnrollRequest, source_ip: Optional[str], collector_public_key: str) -> EnrollResponse:
    try:
        try:
            with db.write() as conn:
                return _enroll(conn, req, source_ip, collector_public_key)
        except IntegrityError:
            # the same host enrolled concurrently through another token; nothing was stored
            raise Refused(409, f"host {req.hostname} is being enrolled concurrently: retry") from None
    except Refused as refusal:
        audit.record_refusal(db, actor=f"enroll:{req.hostname[:100]}", action="agent.enroll",
                             target="", source_ip=source_ip, status_code=refusal.status, detail=refusal.detail)
        raise


def _enroll(conn, req: EnrollRequest, source_ip: Optional[str], collector_public_key: str) -> EnrollResponse:
    now = datetime.now(timezone.utc)
    token = conn.execute(
        select(T_TOKEN.c.id, T_TOKEN.c.system_id, T_TOKEN.c.department_id, T_TOKEN.c.expires_at, T_TOKEN.c.used_at,
               T_TOKEN.c.reenroll_hostname, T_TOKEN.c.created_by,
               T_SYSTEM.c.name.label("system"), T_DEPT.c.name.label("department"))
        .join(T_SYSTEM, T_SYSTEM.c.id == T_TOKEN.c.system_id)
        .join(T_DEPT, T_DEPT.c.id == T_TOKEN.c.department_id)
        .where(T_TOKEN.c.token_hash == hash_secret(req.token))).first()
    if token is None:
        raise Refused(401, "unknown enrollment token")
    if token.used_at is not None:
        raise Refused(401, "enrollment token already used (tokens are one-time: ask for a new one)")
    if token.expires_at <= now:
        raise Refused(401, f"enrollment token expired at {token.expires_at.isoformat()}")
    try:
        public_key = signing.load_public_key_b64(req.public_key)  # refuses small-order and non-canonical keys
    except signing.SigningKeyError as exc:
        raise Refused(422, f"public_key: {exc}") from None
    challenge = signing.enrollment_challenge(req.token, collector_public_key, req.hostname, req.public_key)
    if not signing.verify(public_key, challenge, req.proof):
        # checked before the token is claimed: a wrong proof does not spend it
        raise Refused(401, "proof: not a signature of the enrollment challenge by the private key of public_key "
                           "(docs/wire.md, Enrollment); the token was not used")
    taken = conn.execute(select(T_AGENT.c.id).where(T_AGENT.c.public_key == req.public_key)).scalar()
    if taken is not None:
        raise Refused(409, "public_key is already registered to another agent: make a new key pair")
    host_id = conn.execute(select(T_HOST.c.id).where(T_HOST.c.system_id == token.system_id,
                                                     T_HOST.c.hostname == req.hostname)).scalar()
    reenroll = token.reenroll_hostname
    if reenroll is not None and reenroll != req.hostname:
        raise Refused(403, f"this enrollment token was issued to re-enroll host {reenroll!r} only, "
                           f"not {req.hostname!r}")
    if host_id is not None and reenroll is None:
        raise Refused(409, f"host {req.hostname!r} is already known in system {token.system}: enrolling it again "
                           "would take over its agent and history. If this machine replaces it, ask an admin "
                           "for a re-enrollment token (sentinel enroll-token create --reenroll "
                           f"{req.hostname}, or reenroll_hostname in POST /api/v1/enrollment-tokens); "
                           "otherwise give this host a unique hostname")

    agent_id = str(uuid.uuid4())
    # Claim the token atomically: of two concurrent enrollments with one token, exactly one wins.
    claimed = conn.execute(update(T_TOKEN).where(T_TOKEN.c.id == token.id, T_TOKEN.c.used_at.is_(None))
                           .values(used_at=now, used_by_agent=agent_id)).rowcount
    if claimed != 1:
        raise Refused(401, "enrollment token already used (tokens are one-time: ask for a new one)")

    os_info = req.os
    host_values = dict(os_id=os_info.os_id[:64], os_version=os_info.os_version[:64], os_name=os_info.os_name[:200],
                       family=os_info.family[:32] if os_info.family else None, arch=os_info.arch[:32],
                       kernel=os_info.kernel[:128] if os_info.kernel else None, last_seen=now)
    if host_id is None:
        host_id = conn.execute(insert(T_HOST).values(
            system_id=token.system_id, department_id=token.department_id, hostname=req.hostname, addresses=[],
            first_seen=now, **host_values)).inserted_primary_key[0]
    else:
        conn.execute(update(T_HOST).where(T_HOST.c.id == host_id).values(**host_values))
        replaced = conn.execute(select(T_AGENT.c.id).where(T_AGENT.c.host_id == host_id,
                                                           T_AGENT.c.state == "enrolled")).scalars().all()
        if replaced:
            conn.execute(update(T_AGENT).where(T_AGENT.c.id.in_(replaced)).values(
                state="revoked", revoked_at=now, revoked_reason=f"replaced by agent {agent_id} (re-enrollment)"))
            for old in replaced:
                audit.record(conn, actor=f"agent:{agent_id}", action="agent.revoke", target=f"agent:{old}",
                             source_ip=source_ip, detail="replaced by re-enrollment of the same host")
        audit.record(conn, actor=f"agent:{agent_id}", action="agent.reenroll", target=f"host:{host_id}:{req.hostname}",
                     source_ip=source_ip,
                     detail=f"re-enrollment allowed by enrollment token {token.id} of {token.created_by}; "
                            f"revoked agents: {', '.join(replaced) or 'none'}")
    conn.execute(insert(T_AGENT).values(
        id=agent_id, host_id=host_id, system_id=token.system_id, department_id=token.department_id,
        public_key=req.public_key, state="enrolled", enrolled_at=now, last_seen=now, last_ip=source_ip,
        enrollment_token_id=token.id))
    audit.record(conn, actor=f"agent:{agent_id}", action="agent.enroll", target=f"host:{host_id}:{req.hostname}",
                 source_ip=source_ip, detail=f"system {token.system}, department {token.department}, "
                                             f"enrollment token {token.id}")
    return EnrollResponse(agent_id=agent_id, system=token.system, department=token.department,
                          collector_public_key=collector_public_key)
