"""The only way probes see a host: read-only file access, bounded commands, live facts.

Two implementations: `LiveHost` (this machine) and `RootHost` (an offline root directory: a mounted
disk, an unpacked image or container filesystem). A RootHost resolves symlinks inside the root, so an
absolute link such as /etc/alternatives/x never escapes to the scanning machine's own files. Nothing
here writes to the host.
"""
from __future__ import annotations

import os
import platform
import selectors
import socket
import stat as stat_mod
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Literal, Optional

DEFAULT_READ_LIMIT = 8 << 20  # bytes kept from one file
DEFAULT_OUTPUT_LIMIT = 1 << 20  # bytes kept from one command's stdout (and again for stderr)
DEFAULT_TIMEOUT = 10.0


class _Reasoned(Exception):
    """An exception whose message is a check's reason; `zh` is the same reason in Chinese, when known.
    `declaration`: what is missing is the site's declaration (the check's params in a site file), so the engine
    names the baseline and check whose params to set."""

    declaration = False

    def __init__(self, message: str, zh: Optional[str] = None, *, declaration: Optional[bool] = None):
        super().__init__(message)
        self.zh = zh
        if declaration is not None:
            self.declaration = declaration


class ProbeError(_Reasoned):
    """The fact could not be determined; the check's status becomes `error` with this reason. `observed`: what
    was seen before it (e.g. the backup copies that could be read), kept in the result as evidence."""

    def __init__(self, message: str, zh: Optional[str] = None, *, declaration: Optional[bool] = None,
                 observed: object = None):
        super().__init__(message, zh, declaration=declaration)
        self.observed = observed


class NotApplicable(_Reasoned):
    """The fact does not exist on this kind of host view (e.g. processes on an offline root)."""


class LiveOnly(NotApplicable):
    """A live-host fact asked of an offline root: it exists on the host, it cannot be seen from here. A result
    that is not applicable for this reason leaves its item to a person (待核查), not 不适用 (sentinel/scoring.py)."""


class NotDeclared(LiveOnly):
    """The check judges what the site declares (which data is important, where its copies are) and the site
    declared nothing for it: the fact exists, sentinel cannot see it. As for LiveOnly the item is left to a
    person (待核查), and no error is counted: nothing failed to run (docs/backups.md)."""

    declaration = True


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: Optional[int]
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    exe: str
    cmdline: tuple[str, ...]
    username: str
    ppid: Optional[int] = None  # the parent: a server's workers hold the sockets its master was started for


@dataclass(frozen=True)
class SocketInfo:
    proto: str  # tcp, tcp6, udp, udp6
    address: str
    port: int
    pid: Optional[int] = None
    process: Optional[str] = None


@dataclass
class _Cache:
    files: dict[tuple[str, int], str | BaseException] = field(default_factory=dict)  # (path, limit) -> text or error
    processes: Optional[list[ProcessInfo]] = None
    sockets: Optional[list[SocketInfo]] = None
    os_release: Optional[dict[str, str]] = None


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


_ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64", 0x03: "i686", 0x28: "armv7l", 0xF3: "riscv64",
                 0x102: "loongarch64", 0x08: "mips64", 0x15: "ppc64le", 0x16: "s390x"}


class HostView:
    """Base class; see module docstring. Paths are always absolute paths *on the host*."""

    live: bool = True
    root: Optional[str] = None

    def __init__(self) -> None:
        self._cache = _Cache()

    # ---- files -----------------------------------------------------------------------------------
    def real_path(self, path: str, follow: bool = True) -> str:
        raise NotImplementedError

    def read_text(self, path: str, limit: int = DEFAULT_READ_LIMIT) -> str:
        """File contents (decoded leniently). FileNotFoundError if absent; ProbeError if unreadable."""
        key = (path, limit)
        cached = self._cache.files.get(key)
        if cached is not None:
            if isinstance(cached, BaseException):
                raise cached
            return cached
        try:
            real = self.real_path(path)
            with open(real, "rb") as fh:
                data = fh.read(limit)
            value: str | BaseException = data.decode("utf-8", errors="replace")
        except FileNotFoundError as exc:
            value = FileNotFoundError(exc.errno, f"{path}: no such file")
        except NotADirectoryError as exc:
            value = FileNotFoundError(exc.errno, f"{path}: no such file")
        except IsADirectoryError:
            value = ProbeError(f"{path}: is a directory, expected a file", f"{path} 是目录，应为文件")
        except PermissionError:
            value = ProbeError(f"cannot read {path}: permission denied", f"无法读取 {path}：权限不足")
        except OSError as exc:
            value = ProbeError(f"cannot read {path}: {exc.strerror or exc}", f"无法读取 {path}：{exc.strerror or exc}")
        self._cache.files[key] = value
        if isinstance(value, BaseException):
            raise value
        return value

    def read_optional(self, path: str) -> Optional[str]:
        try:
            return self.read_text(path)
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        try:
            os.lstat(self.real_path(path))
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False
        except PermissionError as exc:
            raise ProbeError(f"cannot stat {path}: permission denied", f"无法查看 {path} 的属性：权限不足") from exc

    def stat(self, path: str, follow: bool = True) -> os.stat_result:
        real = self.real_path(path, follow=follow)
        try:
            return os.stat(real) if follow else os.lstat(real)
        except NotADirectoryError as exc:
            raise FileNotFoundError(exc.errno, f"{path}: no such file") from exc
        except PermissionError as exc:
            raise ProbeError(f"cannot stat {path}: permission denied", f"无法查看 {path} 的属性：权限不足") from exc

    def is_dir(self, path: str) -> bool:
        try:
            return stat_mod.S_ISDIR(self.stat(path).st_mode)
        except FileNotFoundError:
            return False

    def listdir(self, path: str) -> list[str]:
        """Sorted entry names; [] when the directory does not exist."""
        try:
            return sorted(os.listdir(self.real_path(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except PermissionError as exc:
            raise ProbeError(f"cannot list {path}: permission denied", f"无法列出目录 {path}：权限不足") from exc

    def glob(self, pattern: str) -> list[str]:
        """Sorted host paths matching a shell pattern; wildcards may appear in any component."""
        if not pattern.startswith("/"):
            raise ProbeError(f"{pattern}: host paths must be absolute")
        matches = ["/"]
        for comp in (c for c in pattern.split("/") if c):
            nxt: list[str] = []
            for base in matches:
                prefix = base.rstrip("/")
                if any(ch in comp for ch in "*?["):
                    nxt.extend(f"{prefix}/{e}" for e in self.listdir(base) if fnmatchcase(e, comp)
                               and not (e.startswith(".") and not comp.startswith(".")))
                else:
                    nxt.append(f"{prefix}/{comp}")
            matches = nxt
        return sorted(m for m in matches if self.exists(m))

    # ---- live facts --------------------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = DEFAULT_TIMEOUT,
            limit: int = DEFAULT_OUTPUT_LIMIT, env: Optional[Mapping[str, str]] = None) -> CommandResult:
        raise LiveOnly("commands cannot run against an offline root", "离线根目录上不能执行命令")

    def processes(self) -> list[ProcessInfo]:
        raise LiveOnly("processes are a live-host fact; not available for an offline root",
                            "进程只能在运行中的主机上查看，离线根目录不适用")

    def listening(self) -> list[SocketInfo]:
        raise LiveOnly("listening sockets are a live-host fact; not available for an offline root",
                            "监听端口只能在运行中的主机上查看，离线根目录不适用")

    def sysctl(self, name: str) -> Optional[str]:
        raise LiveOnly("runtime kernel parameters are a live-host fact", "运行时内核参数只能在运行中的主机上查看")

    # ---- identity ----------------------------------------------------------------------------------
    def os_release(self) -> dict[str, str]:
        if self._cache.os_release is None:
            text = self.read_optional("/etc/os-release") or self.read_optional("/usr/lib/os-release") or ""
            self._cache.os_release = parse_os_release(text)
        return self._cache.os_release

    def hostname(self) -> str:
        raise NotImplementedError

    def arch(self) -> str:
        raise NotImplementedError

    def kernel(self) -> Optional[str]:
        raise NotImplementedError

    def describe(self, path: str) -> str:
        return path


class LiveHost(HostView):
    live = True
    root = None

    def real_path(self, path: str, follow: bool = True) -> str:
        return path

    def run(self, argv: list[str], timeout: float = DEFAULT_TIMEOUT,
            limit: int = DEFAULT_OUTPUT_LIMIT, env: Optional[Mapping[str, str]] = None) -> CommandResult:
        return run_command(argv, timeout=timeout, limit=limit, env=env)

    def processes(self) -> list[ProcessInfo]:
        if self._cache.processes is None:
            import psutil  # only live runs pay for it

            procs = []
            for p in psutil.process_iter(["pid", "name", "exe", "cmdline", "username", "ppid"]):
                info = p.info
                procs.append(ProcessInfo(pid=info["pid"], name=info.get("name") or "",
                                         exe=info.get("exe") or "", cmdline=tuple(info.get("cmdline") or ()),
                                         username=info.get("username") or "", ppid=info.get("ppid")))
            self._cache.processes = procs
        return self._cache.processes

    def listening(self) -> list[SocketInfo]:
        if self._cache.sockets is None:
            import psutil

            names = {p.pid: p.name for p in self.processes()}
            seen: set[tuple[str, str, int]] = set()
            out: list[SocketInfo] = []
            for conn in psutil.net_connections(kind="inet"):
                is_tcp = conn.type == socket.SOCK_STREAM
                if is_tcp and conn.status != psutil.CONN_LISTEN:
                    continue
                if not is_tcp and conn.raddr:
                    continue
                laddr = conn.laddr
                if not laddr:  # () for a socket with no local address
                    continue
                v6 = conn.family == socket.AF_INET6
                proto = ("tcp" if is_tcp else "udp") + ("6" if v6 else "")
                key = (proto, laddr.ip, laddr.port)
                if key in seen:
                    continue
                seen.add(key)
                out.append(SocketInfo(proto=proto, address=laddr.ip, port=laddr.port, pid=conn.pid,
                                      process=names.get(conn.pid) if conn.pid is not None else None))
            self._cache.sockets = sorted(out, key=lambda s: (s.port, s.proto, s.address))
        return self._cache.sockets

    def sysctl(self, name: str) -> Optional[str]:
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            # procfs refuses reads with a huge buffer (ENOMEM), so ask for a small one.
            return " ".join(self.read_text(path, limit=1 << 16).split())
        except FileNotFoundError:
            return None

    def hostname(self) -> str:
        return socket.gethostname()

    def arch(self) -> str:
        return platform.machine()

    def kernel(self) -> Optional[str]:
        return platform.release()


class RootHost(HostView):
    live = False
    root: str  # always set: the folder the host's / is

    def __init__(self, root: str) -> None:
        super().__init__()
        if not os.path.isdir(root):
            raise ValueError(f"--root {root}: not a directory")
        self.root = os.path.abspath(root)

    def real_path(self, path: str, follow: bool = True) -> str:
        """Map a host path into the root, resolving symlinks as if the root were `/`."""
        if not path.startswith("/"):
            raise ProbeError(f"{path}: host paths must be absolute")
        pending = list(PurePosixPath(path).parts[1:])
        resolved: list[str] = []
        hops = 0
        while pending:
            comp = pending.pop(0)
            if comp in ("", "."):
                continue
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *resolved, comp)
            if (follow or pending) and os.path.islink(candidate):
                hops += 1
                if hops > 40:
                    raise ProbeError(f"{path}: too many levels of symbolic links", f"{path}：符号链接层数过多")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                pending = [p for p in PurePosixPath(target).parts if p != "/"] + pending
                continue
            resolved.append(comp)
        return os.path.join(self.root, *resolved)

    def hostname(self) -> str:
        text = self.read_optional("/etc/hostname")
        name = text.strip().splitlines()[0].strip() if text and text.strip() else ""
        return name or os.path.basename(self.root.rstrip("/")) or "unknown"

    def arch(self) -> str:
        """Read the ELF header of the root's shell: an offline root says its own architecture."""
        for candidate in ("/bin/sh", "/usr/bin/bash", "/bin/bash", "/usr/bin/env"):
            try:
                with open(self.real_path(candidate), "rb") as fh:
                    head = fh.read(20)
            except OSError:
                continue
            if head[:4] == b"\x7fELF" and len(head) >= 20:
                order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
                return _ELF_MACHINES.get(int.from_bytes(head[18:20], order), "unknown")
        return "unknown"

    def kernel(self) -> Optional[str]:
        versions = self.listdir("/lib/modules") or self.listdir("/usr/lib/modules")
        if versions:
            return versions[-1]
        kernels = [n[len("vmlinuz-"):] for n in self.listdir("/boot") if n.startswith("vmlinuz-")]
        return sorted(kernels)[-1] if kernels else None

    def describe(self, path: str) -> str:
        return path


def run_command(argv: list[str], timeout: float = DEFAULT_TIMEOUT,
                limit: int = DEFAULT_OUTPUT_LIMIT, env: Optional[Mapping[str, str]] = None) -> CommandResult:
    """Run argv (never a shell) with a deadline, keeping at most `limit` bytes of each stream. `env` adds to the
    fixed minimal environment: a tool's passphrase goes there (restic, borg), never into argv, which others see."""
    if not argv or not isinstance(argv, (list, tuple)):
        raise ProbeError("a command must be a non-empty argv list")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "LANG": "C", **(env or {})}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # noqa: S603  an argv, never a shell
                                stderr=subprocess.PIPE, env=env, close_fds=True)
    except FileNotFoundError as exc:
        raise ProbeError(f"command not found: {argv[0]}", f"未找到命令: {argv[0]}") from exc
    except PermissionError as exc:
        raise ProbeError(f"command not executable: {argv[0]}", f"命令不可执行: {argv[0]}") from exc
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPE
    streams = (proc.stdout, proc.stderr)
    out_buf, err_buf = bytearray(), bytearray()
    buffers = {proc.stdout.fileno(): out_buf, proc.stderr.fileno(): err_buf}
    truncated = timed_out = False
    with selectors.DefaultSelector() as sel:
        for stream in streams:
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = buffers[key.fd]
                room = limit - len(buf)
                if room > 0:
                    buf.extend(chunk[:room])
                if len(chunk) > max(room, 0):
                    truncated = True  # keep draining so the child never blocks on a full pipe
    if timed_out:
        proc.kill()
    try:
        returncode = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        returncode = None
    for stream in streams:
        stream.close()
    return CommandResult(argv=tuple(argv), returncode=None if timed_out else returncode,
                         stdout=out_buf.decode("utf-8", errors="replace"),
                         stderr=err_buf.decode("utf-8", errors="replace"),
                         duration_s=time.monotonic() - start, truncated=truncated, timed_out=timed_out)


def open_host(root: Optional[str]) -> HostView:
    return RootHost(root) if root else LiveHost()
