"""The collector's own copy of the host baselines, so it judges reports by its rules, not the agent's.

An agent's report names the baseline it ran (`baseline.id`, `baseline.version`). The collector looks that
baseline up here: the shipped baselines (baselines/*.yaml) and the site baselines it was given (a site file
usually `extends:` a shipped baseline and overrides thresholds or waives checks; docs/baselines.md). A site
baseline may not reuse a shipped id: a report naming a shipped id is always judged by the shipped file.

Site baselines are scoped by where the admin put them, since a waiver in one is a privilege: a file directly
in `<state_dir>/baselines/` applies to every department's systems; a file in `<state_dir>/baselines/<name>/`
only to the systems of the department named `<name>` (its name exactly as the API has it). An agent naming a
site baseline its department may not use gets the same refusal as for one the collector does not have, so it
cannot borrow another department's waivers. The scope is the directory, not a key inside the file, so that
whoever may write a file into one department's directory still cannot reach the others. Where a department's
directory and the shared one both define an id and version, the department's own file is used for it.

Every result of the report must be a check of that baseline, with the clause, item, severity, high-risk case
and waiver the baseline gives it (these decide verdicts and scores, so an agent may not choose them); the
collector then computes the item verdicts, score and conclusion itself (sentinel/scoring.py) and only
compares the agent's summary with them. The agent still reports each check's status and evidence: that is
what it observed, and nothing at the collector can observe it instead.

Loaded baselines are kept (keyed by id and version) for the life of the process: a lookup on the ingest hot
path is one dictionary read. A miss (an unknown id or version) re-reads the site directory at most every
`rescan_seconds`, so a site file added while the collector runs is found without a restart, and a flood of
reports naming unknown baselines costs no more than one directory listing per interval.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

from ..baseline import BaselineError, load_baseline, shipped
from ..model import Baseline

log = logging.getLogger("sentinel.collector.baselines")

SITE_DIR = "baselines"  # under the collector's state directory


class UnknownBaseline(Exception):
    """The report names a baseline (id, version) this collector does not have; the message says what it has."""


class CheckRef(NamedTuple):
    """What the baseline fixes about one check (JSON values, as stored)."""

    clause: str
    item: str
    severity: str
    high_risk: Optional[str]
    waiver: Optional[str]
    title: dict
    remediation: dict
    advisory: Optional[dict] = None  # {zh, en}: the check is advisory evidence (decides nothing, opens no finding)
    probe: str = ""  # the probe type, for the check-duration histogram (sentinel_check_duration_seconds)
    key: Optional[str] = None  # the item's catalogue key: the system roll-up merges items by it


class ItemRef(NamedTuple):
    """What the baseline fixes about one item: the roll-up reads these from the kept body."""

    weight: float
    checks: list[str]
    key: Optional[str]
    unit: Optional[str]


@dataclass(frozen=True)
class Reference:
    """One loaded baseline with its checks indexed for the per-result comparison."""

    baseline: Baseline
    checks: dict[str, CheckRef]
    items: dict[tuple[str, str], ItemRef]  # by (clause, item)
    origin: str  # "shipped" or the site file's path, for messages
    scope: Optional[str] = None  # None: every department; else the one department's name

    @classmethod
    def of(cls, baseline: Baseline, origin: str, scope: Optional[str] = None) -> Reference:
        checks = {}
        for control, item, check in baseline.iter_checks():
            checks[check.id] = CheckRef(control.clause, item.item, check.severity.value, check.high_risk,
                                        check.waiver, check.title.model_dump(mode="json"),
                                        check.remediation.model_dump(mode="json"),
                                        check.advisory.model_dump(mode="json") if check.advisory else None,
                                        probe=check.probe, key=item.key)
        items = {(control.clause, item.item): ItemRef(item.weight, [c.id for c in item.checks], item.key, item.unit)
                 for control in baseline.controls for item in control.items}
        return cls(baseline=baseline, checks=checks, items=items, origin=origin, scope=scope)


class BaselineRegistry:
    def __init__(self, site_dirs: Iterable[Path] = (), *, rescan_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.site_dirs = [Path(d) for d in site_dirs]
        self.rescan_seconds = rescan_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._refs: dict[tuple[Optional[str], str, str], Reference] = {}  # (scope, id, version)
        self._shipped = shipped()  # id -> path; the files are read on first use
        self._shipped_loaded: set[str] = set()
        self._site_files: dict[Path, tuple[float, Optional[tuple[Optional[str], str, str]]]] = {}  # -> (mtime, key)
        self._scanned_at: Optional[float] = None

    @classmethod
    def for_state_dir(cls, state_dir: Path, **kw) -> BaselineRegistry:
        return cls([Path(state_dir) / SITE_DIR], **kw)

    def get(self, baseline_id: str, version: str, department: Optional[str] = None) -> Reference:
        """The baseline (id, version) as the systems of `department` may use it: a shipped one, a site file in
        the department's own directory, or one shared by all departments. None: shared and shipped only."""
        ref = self._find(baseline_id, version, department)
        if ref is not None:
            return ref
        with self._lock:
            ref = self._find(baseline_id, version, department)
            if ref is None and baseline_id in self._shipped and baseline_id not in self._shipped_loaded:
                self._load_shipped(baseline_id)
                ref = self._find(baseline_id, version, department)
            if ref is None and baseline_id not in self._shipped and self._may_rescan():
                self._scan_sites()
                ref = self._find(baseline_id, version, department)
            if ref is None:
                raise UnknownBaseline(self._unknown(baseline_id, version, department))
            return ref

    def _find(self, baseline_id: str, version: str, department: Optional[str]) -> Optional[Reference]:
        if department is not None:
            ref = self._refs.get((department, baseline_id, version))
            if ref is not None:
                return ref
        return self._refs.get((None, baseline_id, version))

    # ---- loading ---------------------------------------------------------------------------------

    def preload(self) -> None:
        """Load every shipped baseline (and so the catalogue) now: the collector calls it as it starts, so the
        first report pays no loading and a broken install is logged at start, not at the first report."""
        with self._lock:
            for baseline_id in self._shipped.keys() - self._shipped_loaded:
                self._load_shipped(baseline_id)

    def _load_shipped(self, baseline_id: str) -> None:
        self._shipped_loaded.add(baseline_id)
        path = self._shipped[baseline_id]
        try:
            ref = _shipped_reference(path, path.stat().st_mtime_ns)
        except (BaselineError, OSError) as exc:  # a broken install; every report on it is refused with this reason
            log.error("shipped baseline %s cannot be loaded: %s", baseline_id, exc)
            return
        self._refs[(None, ref.baseline.id, ref.baseline.version)] = ref

    def _may_rescan(self) -> bool:
        now = self._clock()
        if self._scanned_at is not None and now - self._scanned_at < self.rescan_seconds:
            return False
        self._scanned_at = now
        return True

    def _scan_sites(self) -> None:
        seen: set[Path] = set()
        for directory in self.site_dirs:
            shared, scoped = self._listing(directory)
            for path in shared:
                self._refresh(path, None, seen)
            for department, paths in scoped:
                for path in paths:
                    self._refresh(path, department, seen)
        for gone in set(self._site_files) - seen:
            key = self._site_files.pop(gone)[1]
            if key is not None:
                self._refs.pop(key, None)

    @staticmethod
    def _yaml_files(directory: Path) -> list[Path]:
        return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())

    def _listing(self, directory: Path) -> tuple[list[Path], list[tuple[str, list[Path]]]]:
        """The shared files of a site directory, and each department subdirectory's files. Subdirectories
        are listed, never built from a department's name, so no name can point outside the directory."""
        try:
            shared = self._yaml_files(directory)
            subdirs = sorted(p for p in directory.iterdir() if p.is_dir())
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            log.warning("site baselines in %s cannot be listed: %s", directory, exc)
            return [], []
        scoped = []
        for sub in subdirs:
            try:
                scoped.append((sub.name, self._yaml_files(sub)))
            except OSError as exc:
                log.warning("site baselines of department %s in %s cannot be listed: %s", sub.name, sub, exc)
        return shared, scoped

    def _refresh(self, path: Path, scope: Optional[str], seen: set[Path]) -> None:
        seen.add(path)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        known = self._site_files.get(path)
        if known is not None and known[0] == mtime:
            return
        if known is not None and known[1] is not None:
            self._refs.pop(known[1], None)  # the file changed: judge by what it says now
        self._site_files[path] = (mtime, self._load_site(path, scope))

    def _load_site(self, path: Path, scope: Optional[str]) -> Optional[tuple[Optional[str], str, str]]:
        try:
            baseline = load_baseline(path)
        except BaselineError as exc:
            log.warning("site baseline %s not used: %s", path, exc)
            return None
        key = (scope, baseline.id, baseline.version)
        if baseline.id in self._shipped:
            log.warning("site baseline %s not used: id %s is a shipped baseline's; give the site file its own id",
                        path, baseline.id)
            return None
        if key in self._refs:
            log.warning("site baseline %s not used: %s %s is already defined by %s", path, baseline.id,
                        baseline.version, self._refs[key].origin)
            return None
        self._refs[key] = Reference.of(baseline, str(path), scope)
        return key

    def _unknown(self, baseline_id: str, version: str, department: Optional[str]) -> str:
        # only what this department may use is named: another department's site files stay unmentioned
        versions = sorted(v for scope, i, v in self._refs if i == baseline_id and scope in (None, department))
        whose = f" for department {department!r}" if department is not None else ""
        if versions:
            return (f"baseline {baseline_id!r} version {version!r} is not known to this collector{whose} "
                    f"(it has version {', '.join(repr(v) for v in versions)})")
        where = ", ".join(str(d) for d in self.site_dirs) or "none"
        if department is not None and self.site_dirs:
            where = ", ".join(f"{d} and {d}/{department}/" for d in self.site_dirs)
        return (f"baseline {baseline_id!r} is not known to this collector{whose} (shipped: "
                f"{', '.join(sorted(self._shipped))}; site baselines: {where})")


@lru_cache(maxsize=32)
def _shipped_reference(path: Path, mtime_ns: int) -> Reference:
    """One shipped baseline, indexed: read once per process (every registry, e.g. each worker's app, shares it;
    `mtime_ns` is in the key so an upgraded install is read again). References are only read after this."""
    return Reference.of(load_baseline(path), "shipped")
