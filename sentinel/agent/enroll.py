"""Agent identity: enrollment with a one-time token, and the saved result.

State directory (0700) after enrollment:
  agent.key          Ed25519 private key, 0600, never logged or sent
  agent.json         agent id, collector URL, system, department, collector public key
  collector-ca.pem   the pinned collector CA (a copy of --ca; without it the system's trusted roots apply)
"""
from __future__ import annotations

import json
import os
import ssl
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ValidationError

from ..atomicfile import write_atomic
from .client import ClientError, CollectorClient, check_url
from .config import AgentSettings


class EnrollError(Exception):
    """Enrollment could not be done or its saved state cannot be used; the message says why."""


class Identity(BaseModel):
    agent_id: str
    collector_url: str
    system: Optional[str] = None
    department: Optional[str] = None
    collector_public_key: Optional[str] = None
    enrolled_at: datetime


def private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomic write of a file only its owner can read (by default)."""
    write_atomic(path, data, mode=mode)


def load_identity(settings: AgentSettings) -> Identity:
    path = settings.identity_file
    if not path.exists():
        raise EnrollError(f"this agent is not enrolled ({path} missing): run "
                          "`sentinel enroll --token TOKEN --collector URL` first")
    try:
        identity = Identity.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise EnrollError(f"{path}: unreadable agent identity ({exc}); enroll again with --force") from None
    if not settings.key_file.exists():
        raise EnrollError(f"{settings.key_file}: private key missing; enroll again with --force")
    return identity


def ca_for(settings: AgentSettings) -> Optional[Path]:
    """The CA to pin: the configured file, else the one saved at enrollment, else none (system roots)."""
    if settings.ca_file is not None:
        return settings.ca_file
    return settings.pinned_ca_file if settings.pinned_ca_file.exists() else None


def _pem_ok(pem: bytes, where: str) -> None:
    try:
        ssl.create_default_context(cadata=pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise EnrollError(f"{where}: not a PEM CA certificate ({exc})") from None


def enroll(settings: AgentSettings, token: str, collector_url: str, ca_file: Optional[Path] = None,
           force: bool = False) -> Identity:
    """Make a key pair, register its public half with the collector, save the identity."""
    from .. import signing
    from ..hostview import open_host
    from ..osinfo import host_info

    if not token.strip():
        raise EnrollError("enrollment token is empty")
    try:
        url = check_url(collector_url)
    except ClientError as exc:
        raise EnrollError(str(exc)) from None
    if settings.identity_file.exists() and not force:
        raise EnrollError(f"already enrolled ({settings.identity_file}); use --force to enroll again "
                          "with a new key")
    ca_file = ca_file or settings.ca_file
    ca_pem: Optional[bytes] = None
    if ca_file is not None:
        try:
            ca_pem = Path(ca_file).read_bytes()
        except OSError as exc:
            raise EnrollError(f"--ca {ca_file}: {exc.strerror or exc}") from None
        _pem_ok(ca_pem, f"--ca {ca_file}")
    try:
        private_dir(settings.state_dir)
    except OSError as exc:
        raise EnrollError(f"state directory {settings.state_dir}: {exc.strerror or exc}") from None

    key = signing.generate_key()
    info = host_info(open_host(str(settings.host_root) if settings.host_root else None))  # host_root: the node
    # The key is written before the collector hears of it, so a state directory that cannot take it
    # fails here, before the one-time token is spent.
    pending_key = settings.key_file.with_name("agent.key.pending")
    signing.save_private_key(key, pending_key)
    public_key = signing.public_key_b64(key)
    try:
        with CollectorClient(url, ca_file=ca_file, timeout=settings.request_timeout) as client:
            # Proof of possession: sign the challenge binding this token, this collector's key, the
            # hostname and the new public key (docs/wire.md); the collector checks it before it
            # creates the agent.
            collector_key = client.enrollment_info()["collector_public_key"]
            proof = signing.sign(key, signing.enrollment_challenge(token, collector_key, info.hostname, public_key))
            answer = client.enroll(token, public_key, info.hostname, info.model_dump(mode="json"), proof)
    except ClientError as exc:
        pending_key.unlink(missing_ok=True)
        raise EnrollError(str(exc).replace(token, "***")) from None
    if answer.get("collector_public_key") not in (None, collector_key):
        # the agent is enrolled, but under another key than the one it proved itself to: say so
        # rather than save an identity whose collector key is in doubt
        pending_key.unlink(missing_ok=True)
        raise EnrollError(f"the collector at {url} answered the enrollment with another public key than it "
                          "announced before it; not saved (ask the collector's admin to revoke the agent "
                          f"{answer.get('agent_id')!s:.64})")

    identity = Identity(agent_id=answer["agent_id"], collector_url=url, system=_opt(answer.get("system")),
                        department=_opt(answer.get("department")),
                        collector_public_key=_opt(answer.get("collector_public_key")),
                        enrolled_at=datetime.now(timezone.utc))
    os.replace(pending_key, settings.key_file)
    if ca_pem is not None:
        write_private(settings.pinned_ca_file, ca_pem, mode=0o644)
    elif settings.pinned_ca_file.exists():
        settings.pinned_ca_file.unlink()  # a CA pinned for an earlier collector must not linger
    write_private(settings.identity_file, json.dumps(identity.model_dump(mode="json"), indent=2).encode())
    return identity


def _opt(value: object) -> Optional[str]:
    return None if value is None else str(value)
