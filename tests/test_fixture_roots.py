"""The offline fixture roots (tests/fixtures/roots) build into faithful roots.

What the shipped baselines conclude on them is tests/test_fixture_reports.py; this file checks the roots
themselves: they build, carry their modes, owners and package databases, identify as the right
distribution, keep every symlink inside the root, and really contain the defects the README lists.
"""
import os
import sqlite3
import stat
from pathlib import Path, PurePosixPath

import pytest

from sentinel.hostview import RootHost
from sentinel.osinfo import family_of
from tests.fixtures.build import (
    ROOTS,
    RPMDB_PATH,
    FixtureError,
    available,
    build_root,
    mode_of,
    parse_modes,
    parse_packages,
)

# root prefix -> (os-release ID, VERSION_ID, family, package database)
DISTROS = {
    "debian12": ("debian", "12", "debian", "dpkg"),
    "uos20": ("uos", "20", "debian", "dpkg"),
    "rocky9": ("rocky", "9.4", "rhel", "rpm"),
    "openeuler2203": ("openEuler", "22.03", "rhel", "rpm"),
    "kylinv10": ("kylin", "V10", "rhel", "rpm"),
}
NAMES = [f"{d}-{v}" for d in DISTROS for v in ("default", "hardened")]


def distro(name: str):
    return DISTROS[name.rsplit("-", 1)[0]]


def host_paths(root: Path):
    """(host path, real path) of everything in a built root, symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            real = Path(dirpath) / entry
            yield "/" + real.relative_to(root).as_posix(), real


def test_the_ten_roots_are_shipped():
    assert available() == sorted(NAMES)
    for name in NAMES:
        assert (ROOTS / f"{name}.modes").is_file(), name
        assert (ROOTS / f"{name}.packages.txt").is_file() == (distro(name)[3] == "rpm"), name


def test_readme_has_a_row_for_every_root():
    readme = (ROOTS / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    for prefix in DISTROS:
        assert any(line.startswith(f"| `{prefix}-default`") for line in rows), prefix


@pytest.mark.parametrize("name", NAMES)
def test_modes_and_owners_applied(name, fixture_root):
    root = fixture_root(name)
    entries = parse_modes(ROOTS / f"{name}.modes")
    listed = {e.path: e for e in entries}
    assert listed, f"{name}.modes lists nothing"
    passwd = {line.split(":")[0]: int(line.split(":")[2]) for line in (root / "etc/passwd").read_text().splitlines()}
    group = {line.split(":")[0]: int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()}
    for host, real in host_paths(root):
        st = os.lstat(real)
        if stat.S_ISLNK(st.st_mode):
            continue
        entry = listed.get(host)
        if entry is None:
            if host.endswith(RPMDB_PATH):
                continue
            want = "0755" if stat.S_ISDIR(st.st_mode) else "0644"
            assert mode_of(real) == want, f"{host}: unlisted, expected the {want} baseline"
            continue
        assert mode_of(real) == f"{entry.mode:04o}", host
        assert stat.S_ISDIR(st.st_mode) == entry.is_dir, host
        if os.geteuid() == 0 and entry.owner:
            assert (st.st_uid, st.st_gid) == (passwd[entry.owner], group[entry.group]), host
    for path in listed:
        assert (root / path.lstrip("/")).exists(), f"{path} listed but not built"


@pytest.mark.root
def test_ownership_needs_root_to_be_faithful(fixture_root):
    if os.geteuid() != 0:
        pytest.skip("owners are applied only when the build runs as root")
    root = fixture_root("debian12-default")
    st = os.stat(root / "etc/shadow")
    shadow_gid = next(int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()
                      if line.startswith("shadow:"))
    assert (st.st_uid, st.st_gid, mode_of(root / "etc/shadow")) == (0, shadow_gid, "0640")


@pytest.mark.parametrize("name", NAMES)
def test_os_release_and_family(name, fixture_root):
    host = RootHost(str(fixture_root(name)))
    os_id, version_id, family, _ = distro(name)
    rel = host.os_release()
    assert (rel.get("ID"), rel.get("VERSION_ID")) == (os_id, version_id)
    assert os.path.islink(host.root + "/etc/os-release"), "os-release is a link to /usr/lib/os-release"
    assert family_of(rel, host) == family
    if os_id in ("kylin", "uos"):
        # both IDs name an RPM and a Debian edition: nothing in os-release may decide, the package db does
        assert "ID_LIKE" not in rel
        assert family_of(rel, None) is None


@pytest.mark.parametrize("name", NAMES)
def test_symlinks_resolve_inside_the_root(name, fixture_root):
    root = fixture_root(name)
    host = RootHost(str(root))
    links = 0
    for hostpath, real in host_paths(root):
        if not real.is_symlink():
            continue
        links += 1
        target = os.readlink(real)
        if not target.startswith("/"):
            # a relative link may not climb above the root's /
            joined = PurePosixPath(os.path.normpath(str(PurePosixPath(hostpath).parent / target)))
            assert joined.is_absolute() and ".." not in joined.parts, f"{hostpath} -> {target}"
        resolved = host.real_path(hostpath)
        assert os.path.commonpath([resolved, host.root]) == host.root, f"{hostpath} -> {resolved}"
        assert os.path.lexists(resolved) and not os.path.islink(resolved), f"{hostpath} -> {target} dangles"
    assert links >= 5, "the roots ship the usual links (os-release, sysctl, *.wants)"


def test_absolute_links_would_escape_without_roothost(fixture_root):
    # why RootHost.real_path matters: the OS resolves an absolute link against the scanner's own /
    root = fixture_root("rocky9-default")
    link = root / "etc/pam.d/system-auth"
    assert os.readlink(link) == "/etc/authselect/system-auth"
    assert os.path.realpath(link) == "/etc/authselect/system-auth"
    assert RootHost(str(root)).real_path("/etc/pam.d/system-auth") == str(root / "etc/authselect/system-auth")


@pytest.mark.parametrize("name", [n for n in NAMES if distro(n)[3] == "rpm"])
def test_rpmdb_matches_package_list(name, fixture_root):
    db = fixture_root(name) / RPMDB_PATH
    packages = parse_packages(ROOTS / f"{name}.packages.txt")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = sorted(r[0] for r in con.execute("SELECT key FROM Name"))
        blobs = con.execute("SELECT count(*) FROM Packages").fetchone()[0]
    finally:
        con.close()
    assert names == sorted(p[0] for p in packages)
    assert blobs == len(packages)
    assert len(set(names)) == len(names), "a package listed twice"


@pytest.mark.parametrize("name", [n for n in NAMES if distro(n)[3] == "dpkg"])
def test_dpkg_status_is_well_formed(name, fixture_root):
    text = (fixture_root(name) / "var/lib/dpkg/status").read_text(encoding="utf-8")
    seen = set()
    for stanza in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if not line.startswith(" ") and ": " in line)
        for key in ("Package", "Status", "Priority", "Section", "Maintainer", "Architecture", "Version",
                    "Description"):
            assert key in fields, f"{fields.get('Package')}: no {key}"
        assert fields["Package"] not in seen
        seen.add(fields["Package"])
        assert fields["Status"] in ("install ok installed", "deinstall ok config-files")
    assert len(seen) >= 30


def test_no_binary_or_secret_committed():
    for path in ROOTS.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        assert b"\0" not in data, f"{path}: binary files are generated at build time, not committed"
        data.decode("utf-8")
        assert b"PRIVATE KEY-----" not in data, path
        assert path.name not in ("rpmdb.sqlite", "Packages", "Packages.db"), path


def _lines(root: Path, rel: str) -> list[str]:
    return (root / rel).read_text(encoding="utf-8").splitlines()


def _users(root: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in _lines(root, "etc/passwd")}


def _shadow(root: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in _lines(root, "etc/shadow")}


def _rpm_names(name: str) -> set[str]:
    return {p[0] for p in parse_packages(ROOTS / f"{name}.packages.txt")}


def _dpkg_installed(root: Path) -> set[str]:
    text = (root / "var/lib/dpkg/status").read_text(encoding="utf-8")
    return {s.split("\n", 1)[0].split(": ", 1)[1] for s in text.strip().split("\n\n")
            if "Status: install ok installed" in s}


ROOT_LOGIN_DROPIN = "etc/ssh/sshd_config.d/01-permitrootlogin.conf"

# The README's deliberate defects, each as a fact about the default root that its hardened twin lacks.
DEFECTS = {
    "rocky9": [
        ("telnet-server installed", lambda r, n: "telnet-server" in _rpm_names(n)),
        ("telnet.socket enabled",
         lambda r, n: (r / "etc/systemd/system/sockets.target.wants/telnet.socket").is_symlink()),
        ("/root/.rhosts", lambda r, n: (r / "root/.rhosts").is_file()),
        ("PermitRootLogin yes drop-in", lambda r, n: (r / ROOT_LOGIN_DROPIN).exists()
         and "PermitRootLogin yes" in _lines(r, ROOT_LOGIN_DROPIN)),
    ],
    "openeuler2203": [
        ("empty password", lambda r, n: any(f[1] == "" for f in _shadow(r).values())),
        ("SELinux permissive", lambda r, n: "SELINUX=permissive" in _lines(r, "etc/selinux/config")),
    ],
    "kylinv10": [
        ("shadow readable", lambda r, n: mode_of(r / "etc/shadow") == "0644"),
        ("duplicate UID", lambda r, n: len({f[2] for f in _users(r).values()}) < len(_users(r))),
        ("vsftpd installed", lambda r, n: "vsftpd" in _rpm_names(n)),
        ("vsftpd enabled", lambda r, n: (r / "etc/systemd/system/multi-user.target.wants/vsftpd.service").is_symlink()),
    ],
    "debian12": [
        ("second UID 0", lambda r, n: sorted(u for u, f in _users(r).items() if f[2] == "0") == ["root", "toor"]),
        ("/etc/hosts.equiv", lambda r, n: (r / "etc/hosts.equiv").is_file()),
    ],
    "uos20": [
        ("lightdm autologin", lambda r, n: (r / "etc/lightdm/lightdm.conf").is_file()
         and "autologin-user=uos" in _lines(r, "etc/lightdm/lightdm.conf")),
        ("~/.rhosts", lambda r, n: (r / "home/uos/.rhosts").is_file()),
    ],
}


@pytest.mark.parametrize("prefix", sorted(DEFECTS))
def test_deliberate_defects_only_in_default(prefix, fixture_root):
    for variant, expected in (("default", True), ("hardened", False)):
        name = f"{prefix}-{variant}"
        root = fixture_root(name)
        for label, present in DEFECTS[prefix]:
            assert bool(present(root, name)) is expected, f"{name}: {label}"


@pytest.mark.parametrize("prefix", sorted(DISTROS))
def test_hardened_differs_where_the_baseline_looks(prefix, fixture_root):
    default, hardened = fixture_root(f"{prefix}-default"), fixture_root(f"{prefix}-hardened")
    # password aging in login.defs and for root in shadow
    for root, want in ((default, "99999"), (hardened, "90")):
        assert any(line.split() == ["PASS_MAX_DAYS", want] for line in _lines(root, "etc/login.defs")), root.name
        assert _shadow(root)["root"][4] == want, root.name
    # integrity tool and anti-malware only after the 整改
    if DISTROS[prefix][3] == "rpm":
        installed = lambda n: _rpm_names(n)  # noqa: E731
    else:
        installed = lambda n: _dpkg_installed(fixture_root(n))  # noqa: E731
    assert not {"aide", "clamav"} & installed(f"{prefix}-default")
    assert {"aide", "clamav"} <= installed(f"{prefix}-hardened")
    assert (hardened / "etc/profile.d/dengbao.sh").is_file() and not (default / "etc/profile.d").exists()


# ---- the build itself ----------------------------------------------------------------------------


def test_unknown_root_is_named(tmp_path):
    with pytest.raises(FixtureError, match=r"no fixture root 'centos5'.*available: debian12-default"):
        build_root("centos5", tmp_path)


def test_build_refuses_an_existing_destination(tmp_path):
    (tmp_path / "uos20-default").mkdir()
    with pytest.raises(FixtureError, match="already exists"):
        build_root("uos20-default", tmp_path)


@pytest.mark.parametrize("line, message", [
    ("0644 root:root /etc/passwd extra", "expected 'MODE"),
    ("0649 /etc/passwd", "mode must be octal"),
    ("0644 etc/passwd", "must be absolute"),
    ("0644 /etc/../../passwd", "must be absolute, inside the root"),
    ("0644 root /etc/passwd", "owner must be OWNER:GROUP"),
])
def test_modes_manifest_errors_name_file_and_line(tmp_path, line, message):
    manifest = tmp_path / "x.modes"
    manifest.write_text("# comment\n\n0644 /etc/group\n" + line + "\n")
    with pytest.raises(FixtureError, match=rf"^x\.modes:4: .*{message}"):
        parse_modes(manifest)


def test_modes_manifest_duplicate_path(tmp_path):
    manifest = tmp_path / "x.modes"
    manifest.write_text("0644 /etc/group\n0600 /etc/group\n")
    with pytest.raises(FixtureError, match=r"x\.modes:2: /etc/group already listed on line 1"):
        parse_modes(manifest)


def test_packages_list_errors(tmp_path):
    good = tmp_path / "ok.packages.txt"
    good.write_text("# c\nbash 5.1.8 9.el9 x86_64\nshadow-utils 4.9 8.el9 x86_64 2\n")
    assert parse_packages(good) == [("bash", "5.1.8", "9.el9", "x86_64"), ("shadow-utils", "4.9", "8.el9", "x86_64", 2)]
    bad = tmp_path / "bad.packages.txt"
    bad.write_text("bash 5.1.8 x86_64\n")
    with pytest.raises(FixtureError, match=r"bad\.packages\.txt:1: expected 'name version release arch"):
        parse_packages(bad)
    bad.write_text("bash 5.1.8 9.el9 x86_64 two\n")
    with pytest.raises(FixtureError, match="epoch must be a number"):
        parse_packages(bad)


@pytest.fixture
def scratch_roots(tmp_path, monkeypatch):
    """A private copy of ROOTS holding one small root, to exercise build errors without touching the real ones."""
    import tests.fixtures.build as build

    roots = tmp_path / "roots"
    (roots / "tiny/etc").mkdir(parents=True)
    (roots / "tiny/etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (roots / "tiny/etc/group").write_text("root:x:0:\n")
    (roots / "tiny/etc/shadow").write_text("root:*:19800:0:99999:7:::\n")
    os.symlink("/etc", roots / "tiny/conf")
    monkeypatch.setattr(build, "ROOTS", roots)
    return roots


def test_manifest_entry_must_exist(scratch_roots, tmp_path):
    (scratch_roots / "tiny.modes").write_text("0000 /etc/shadow\n0640 /etc/missing\n")
    with pytest.raises(FixtureError, match=r"tiny\.modes:2: /etc/missing is not a file in the tiny root"):
        build_root("tiny", tmp_path / "out")


def test_manifest_may_not_go_through_a_symlink(scratch_roots, tmp_path):
    (scratch_roots / "tiny.modes").write_text("0000 /conf/shadow\n")
    with pytest.raises(FixtureError, match="goes through the symlink conf"):
        build_root("tiny", tmp_path / "out")


def test_manifest_creates_directories_and_keeps_links(scratch_roots, tmp_path):
    (scratch_roots / "tiny.modes").write_text("0000 root:root /etc/shadow\n0700 /var/log/audit/\n")
    root = build_root("tiny", tmp_path / "out")
    assert mode_of(root / "var/log/audit") == "0700" and mode_of(root / "etc/shadow") == "0000"
    assert mode_of(root / "var/log") == "0755" and mode_of(root / "etc/passwd") == "0644"
    assert os.readlink(root / "conf") == "/etc"


@pytest.mark.root
def test_owner_unknown_to_the_root_is_an_error(scratch_roots, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("owners are resolved only when the build runs as root")
    (scratch_roots / "tiny.modes").write_text("0640 root:shadow /etc/shadow\n")
    with pytest.raises(FixtureError, match=r"tiny\.modes:1: group 'shadow' is not in the tiny root's /etc/group"):
        build_root("tiny", tmp_path / "out")


def test_missing_modes_manifest(scratch_roots, tmp_path):
    with pytest.raises(FixtureError, match="missing tiny.modes"):
        build_root("tiny", tmp_path / "out")
