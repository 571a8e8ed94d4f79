"""Credentials for the read-only connections of object probes (databases, Redis): from the environment or a
site file, never from a baseline, never into a report or a log.

Where a product's truth is only in the running server (MySQL `SHOW VARIABLES`, Redis `CONFIG GET`), its probe
connects as a read-only account (docs/probes.md gives the GRANT for each). The account comes from, first to last:

- the environment: `SENTINEL_<KIND>_<FIELD>` (`SENTINEL_MYSQL_USER`, `SENTINEL_MYSQL_PASSWORD`,
  `SENTINEL_REDIS_PASSWORD`, ...), for the default instance;
- the site file named by `SENTINEL_OBJECT_CREDENTIALS` (default /etc/sentinel/objects.yaml), YAML keyed by object
  kind, then optionally by instance: `mysql: {user: sentinel_ro, password: ...}` or
  `mysql: {instances: {"3307": {user: ..., password: ...}}}`. The file holds secrets, so it is refused when others
  than its owner may read it.

`ObjectCredentials.__repr__` hides the password, so an error or a log line that prints one shows no secret.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

DEFAULT_FILE = Path("/etc/sentinel/objects.yaml")
_FIELDS = ("user", "password", "host", "port", "socket", "database")


class CredentialsError(Exception):
    """The credentials file cannot be used (unreadable, readable by others, malformed); names the file."""


class ObjectCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user: Optional[str] = None
    password: Optional[SecretStr] = None
    host: Optional[str] = None
    port: Optional[int] = None
    socket: Optional[str] = None  # a Unix socket path, preferred over host/port where given
    database: Optional[str] = None

    def secret(self) -> Optional[str]:
        return self.password.get_secret_value() if self.password is not None else None


def credentials(kind: str, instance: Optional[str] = None, *, environ: Optional[Mapping[str, str]] = None,
                path: Optional[Path] = None) -> ObjectCredentials:
    """The account for object `kind` (instance `instance`, or the default one); fields nobody gave are None."""
    env = os.environ if environ is None else environ
    given: dict[str, Any] = {}
    file = path or Path(env.get("SENTINEL_OBJECT_CREDENTIALS") or DEFAULT_FILE)
    entry = _read(file).get(kind) or {}
    if not isinstance(entry, dict):
        raise CredentialsError(f"{file}: {kind}: must be a mapping of user, password, host, port, socket, database")
    instances = entry.get("instances") or {}
    if not isinstance(instances, dict):
        raise CredentialsError(f"{file}: {kind}.instances: must be a mapping of instance -> account")
    given.update({k: v for k, v in entry.items() if k != "instances"})
    if instance is not None and str(instance) in {str(k) for k in instances}:
        given.update(next(v for k, v in instances.items() if str(k) == str(instance)) or {})
    if instance is None:  # the environment names the default instance only
        prefix = f"SENTINEL_{kind.upper()}_"
        given.update({f: env[prefix + f.upper()] for f in _FIELDS if env.get(prefix + f.upper())})
    try:
        return ObjectCredentials.model_validate(given)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise CredentialsError(f"{file}: {kind}: invalid field(s): {where}") from None


def _read(file: Path) -> dict[str, Any]:
    try:
        st = file.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError(f"{file}: cannot be read ({exc.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"{file}: holds passwords but others than its owner may read it "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CredentialsError(f"{file}: not readable YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{file}: must be a mapping keyed by object kind (mysql, postgresql, redis)")
    return data
