"""Host reports written by group commit (sentinel/collector/groupcommit.py, ingest/), on both stores."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from sentinel.collector.groupcommit import GroupCommit
from sentinel.collector.ingest import Ingestor, chain
from sentinel.store.models import ZERO_HASH, Report, Run, System
from tests.collector_helpers import World, audit_rows, counts, envelope, known_baselines, make_report, sign
from tests.waits import until

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


def _queued(group: GroupCommit) -> int:
    """Jobs waiting in `group`; read under its lock, which a submitting thread holds from queueing its job
    until it waits (or starts preparing or writing)."""
    with group._cv:
        return len(group._waiting)


def test_group_commit_batches_and_hands_errors_to_their_threads():
    batches: list[list[int]] = []
    gate = threading.Event()

    def write(jobs):
        if not batches:
            gate.wait(5)  # hold the first batch so the others queue up behind it
        batches.append([j.item for j in jobs])
        for j in jobs:
            if j.item == 7:
                j.error = ValueError("bad item")
            else:
                j.result = j.item * 10
        for j in jobs:
            j.done = True

    group = GroupCommit(write, lambda waiting: [j for j in waiting if j.item % 2 == waiting[0].item % 2][:4])
    results: dict[int, object] = {}

    def submit(i):
        try:
            results[i] = group.submit(i)
        except ValueError as exc:
            results[i] = str(exc)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    until(lambda: group._writing, "the first batch to be written")
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(1, 12)]
    for t in threads:  # ...so these queue up behind it
        t.start()
    until(lambda: _queued(group) == 11, "the other 11 jobs to queue behind the first batch")
    gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert results == {i: ("bad item" if i == 7 else i * 10) for i in range(12)}
    assert sorted(i for b in batches for i in b) == list(range(12))
    assert all(len(b) <= 4 and len({i % 2 for i in b}) == 1 for b in batches)


def test_prepare_settles_some_jobs_and_the_rest_are_written():
    written: list[list[int]] = []
    gate = threading.Event()

    def prepare(jobs):
        for j in jobs:
            if j.item < 0:
                j.error, j.done = ValueError(f"refused {j.item}"), True
            elif j.item == 0:
                j.result, j.done = "answered early", True
            else:
                j.item = j.item * 100  # what write and pick see from now on

    def write(jobs):
        if not written:
            gate.wait(5)
        written.append([j.item for j in jobs])
        for j in jobs:
            j.result = j.item + 1

    group = GroupCommit(write, lambda ready: ready[:3], prepare)
    results: dict[int, object] = {}

    def submit(i):
        try:
            results[i] = group.submit(i)
        except ValueError as exc:
            results[i] = str(exc)

    first = threading.Thread(target=submit, args=(1,), name="t1")
    first.start()
    until(lambda: group._writing, "the first batch to be written")
    others = [threading.Thread(target=submit, args=(i,), name=f"t{i}") for i in (-2, 0, 2, 3, 4, 5)]
    for t in others:
        t.start()
    until(lambda: _queued(group) == 6, "the other 6 jobs to queue behind the first batch")
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert results == {1: 101, -2: "refused -2", 0: "answered early", 2: 201, 3: 301, 4: 401, 5: 501}
    assert sorted(i for b in written for i in b) == [100, 200, 300, 400, 500]
    assert all(len(b) <= 3 for b in written)


@pytest.mark.parametrize("overlap", [False, True])
def test_prepare_overlaps_a_write_only_when_asked(overlap):
    events: list[str] = []
    writing = threading.Event()
    release = threading.Event()

    def prepare(jobs):
        events.append(f"prepare {[j.item for j in jobs]}")

    def write(jobs):
        events.append(f"write {[j.item for j in jobs]} begins")
        writing.set()
        release.wait(5)
        events.append(f"write {[j.item for j in jobs]} ends")
        for j in jobs:
            j.result = j.item

    group = GroupCommit(write, lambda ready: ready[:1], prepare, overlap=overlap)
    first = threading.Thread(target=group.submit, args=(1,))
    first.start()
    assert writing.wait(5)
    second = threading.Thread(target=group.submit, args=(2,))
    second.start()
    if overlap:  # the second job is prepared while the first is written...
        until(lambda: "prepare [2]" in events, "the second job to be prepared during the write")
    else:  # ...or, seen under the lock, it waits unprepared (a thread that would prepare it holds the lock
        # until it has marked itself preparing)
        until(lambda: _queued(group) == 1, "the second job to queue")
        with group._cv:
            assert not group._preparing and not group._waiting[0].prepared
    release.set()
    first.join(5)
    second.join(5)
    during = events[events.index("write [1] begins") + 1]
    assert during == ("prepare [2]" if overlap else "write [1] ends")
    assert events[-1] == "write [2] ends"


def test_an_exception_in_prepare_reaches_every_job_it_did_not_settle():
    def prepare(jobs):
        jobs[0].result, jobs[0].done = "settled", True
        raise RuntimeError("prepare broke")

    group = GroupCommit(lambda jobs: None, lambda ready: ready, prepare)
    assert group.submit(1) == "settled"
    with pytest.raises(RuntimeError, match="prepare broke"):
        group._prepare = lambda jobs: (_ for _ in ()).throw(RuntimeError("prepare broke"))
        group.submit(2)
    assert not group._writing and not group._waiting


@pytest.fixture
def world(db, make_client):
    w = World(db)
    w.department("health")
    w.system("his", "health")
    w.system("lis", "health")
    client = make_client(db)
    agents = [w.enroll(client, "his" if i % 2 else "lis", f"web-{i}") for i in range(6)]
    return w, agents


def _deliver(ingestor, payloads, threads=6):
    answers, lock = [], threading.Lock()

    def run(chunk):
        for raw, headers in chunk:
            status, answer = ingestor.handle(raw, headers["X-Sentinel-Agent"], headers["X-Sentinel-Signature"],
                                             "127.0.0.1")
            with lock:
                answers.append((status, answer))

    workers = [threading.Thread(target=run, args=(payloads[k::threads],)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return answers


def _chains_intact(db):
    with db.read() as conn:
        runs = conn.execute(select(Run.__table__).order_by(Run.id)).all()
        heads = dict(conn.execute(select(System.id, System.chain_head)).all())
    prev: dict[int, str] = {}
    for run in runs:
        expected = prev.get(run.system_id, ZERO_HASH)
        assert run.prev_chain_hash == expected and run.chain_hash == chain(expected, run.digest)
        prev[run.system_id] = run.chain_hash
    assert all(heads[sid] == head for sid, head in prev.items())
    return len(runs)


def test_concurrent_reports_are_batched_and_chained(world, db):
    _, agents = world
    ingestor = Ingestor(db, max_body_bytes=1 << 20, skew_seconds=300, baselines=known_baselines())
    sizes: list[int] = []
    write_batch = ingestor._write_batch

    def counting(jobs):
        sizes.append(len(jobs))
        write_batch(jobs)

    ingestor._group._write = counting
    payloads = [sign(a.key, envelope(a.agent_id, make_report({"a": "fail" if (i + k) % 3 else "pass", "b": "pass"},
                                                             hostname=f"web-{k}")))
                for i in range(5) for k, a in enumerate(agents)]
    answers = _deliver(ingestor, payloads)
    assert sorted(s for s, _ in answers) == [202] * len(payloads)
    assert _chains_intact(db) == len(payloads)
    assert sum(sizes) == len(payloads)
    # every report's findings followed its own host's history, whatever the batching
    with db.read() as conn:
        open_a = conn.exec_driver_sql("SELECT COUNT(*) FROM findings WHERE check_id = 'a' "
                                      "AND resolved_at IS NULL").scalar_one()
    assert open_a == sum(1 for k in range(len(agents)) if (4 + k) % 3)


def test_a_failing_batch_is_written_report_by_report(world, db):
    _, agents = world
    ingestor = Ingestor(db, max_body_bytes=1 << 20, skew_seconds=300, baselines=known_baselines())
    write = ingestor._store.write
    failed = []

    def flaky(conn, w):
        if len(w.runs) > 1 and not failed:
            failed.append(len(w.runs))
            raise RuntimeError("injected failure of a whole batch")
        write(conn, w)

    ingestor._store.write = flaky
    gate = threading.Event()
    write_batch = ingestor._write_batch

    def held(jobs):
        gate.wait(5)
        write_batch(jobs)

    ingestor._group._write = held
    payloads = [sign(a.key, envelope(a.agent_id, make_report({"a": "fail"}, hostname=f"web-{k}")))
                for k, a in enumerate(agents)]
    timer = threading.Timer(0.5, gate.set)
    timer.start()
    answers = _deliver(ingestor, payloads)
    timer.join()
    assert failed and sorted(s for s, _ in answers) == [202] * len(payloads)
    assert _chains_intact(db) == len(payloads)


def test_revoked_between_checks_and_write_is_refused(world, db):
    w, agents = world
    agent = agents[0]
    ingestor = Ingestor(db, max_body_bytes=1 << 20, skew_seconds=300, baselines=known_baselines())
    prepare = ingestor._prepare

    def revoke_then_prepare(checked, ip):
        from sentinel.collector import operations

        with db.session(write=True) as s:
            operations.revoke_agent(w.ctx(s), agent.agent_id, "key lost")
        return prepare(checked, ip)

    ingestor._prepare = revoke_then_prepare
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "fail"}, hostname="web-0")))
    before = counts(db)
    status, answer = ingestor.handle(raw, headers["X-Sentinel-Agent"], headers["X-Sentinel-Signature"], "127.0.0.1")
    assert status == 403 and "revoked" in answer["detail"]
    assert counts(db) == before
    assert audit_rows(db, "report.ingest")[-1].status_code == 403


def test_a_mixed_crowd_gets_each_its_own_answer(world, db):
    """Valid, forged, unknown-agent and inventory envelopes checked together by one leader."""
    _, agents = world
    ingestor = Ingestor(db, max_body_bytes=1 << 20, skew_seconds=300, baselines=known_baselines())
    gate = threading.Event()
    prepare = ingestor._group._prepare

    def held(jobs):
        gate.wait(5)  # let the crowd queue up so the leader checks them together
        prepare(jobs)

    ingestor._group._prepare = held
    good = [sign(a.key, envelope(a.agent_id, make_report({"a": "fail"}, hostname=f"web-{k}")))
            for k, a in enumerate(agents[:3])]
    raw, headers = sign(agents[3].key, envelope(agents[3].agent_id, make_report({"a": "pass"}, hostname="web-3")))
    forged = (raw.replace(b'"pass"', b'"fail"'), headers)
    unknown = sign(agents[4].key, envelope("no-such-agent", make_report({"a": "pass"}, hostname="web-4")),
                   agent_id="no-such-agent")
    inventory = sign(agents[5].key, envelope(agents[5].agent_id, {
        "os": {"hostname": "web-5", "os_id": "debian", "os_version": "12", "os_name": "Debian", "arch": "x86_64"},
        "arch": "x86_64", "cpu_count": 2}, kind="inventory"))
    payloads = [*good, forged, unknown, inventory]
    timer = threading.Timer(0.5, gate.set)
    timer.start()
    answers = {}

    def run(i):
        raw, h = payloads[i]
        answers[i] = ingestor.handle(raw, h["X-Sentinel-Agent"], h["X-Sentinel-Signature"], "127.0.0.1")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    timer.join()
    assert [answers[i][0] for i in range(len(payloads))] == [202, 202, 202, 401, 401, 202]
    assert "signature" in answers[3][1]["detail"] and "unknown agent" in answers[4][1]["detail"]
    assert _chains_intact(db) == 3
    refused = audit_rows(db, "report.ingest")
    assert sorted(r.status_code for r in refused) == [401, 401]
    assert all(r.target.startswith("report:") for r in refused)


def test_same_report_in_one_batch_is_stored_once(world, db):
    _, agents = world
    agent = agents[1]
    ingestor = Ingestor(db, max_body_bytes=1 << 20, skew_seconds=300, baselines=known_baselines())
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "fail"}, hostname="web-1")))
    answers = _deliver(ingestor, [(raw, headers)] * 6)
    assert sorted(s for s, _ in answers) == [200] * 5 + [202]
    assert len({a["run_id"] for _, a in answers}) == 1
    with db.read() as conn:
        assert len(conn.execute(select(Report.__table__)).all()) == 1
