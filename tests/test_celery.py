"""The Celery integration: the event mapping on hand-made events, and a real cluster end to end.

The end-to-end part starts ``redis-server`` on 127.0.0.1 (a free port, no persistence, a temporary
folder), a Celery worker process on ``tests/celery_app.py`` (prefork, one child, events on), two
in-process receivers (endpoint by queue and by task) and the ``jobmetrics celery`` command in a
subprocess. It sends tasks that succeed, fail, retry, get revoked while queued and expire, then
checks every counter exactly and each duration against the task's sleep time.

Durations: a task's execution is bracketed by its ``task-started`` and ``task-succeeded``/
``task-failed`` events, both stamped by the worker's main process: ``task-started`` when it learns
that the pool child accepted the job, which the child may already be running (a few ms in practice,
:data:`EARLY` allowed), and the end after the child's result is back (:data:`SLACK` allowed: pool
hand-over, event publishing, a loaded two-core machine). So each execution lies within
``[sleep - EARLY, sleep + SLACK]``; each recorded duration is checked through its HDR bucket
``[lo, hi]`` (2 significant figures: a width of at most 2⁻⁷ of the value): ``hi >= sleep - EARLY``
and ``lo <= sleep + SLACK``.

Redis: when ``redis-server`` is missing, the test installs the Debian package if it runs as root
with ``apt-get`` (as CI does through ``.ci/run``), and skips only when that is impossible. Every
process started here is killed with its process group by a finalizer, also on failure.

Warnings: the in-process parts (sending tasks, ``revoke``, the receivers) emit none with the
Celery/kombu versions tested; the worker runs in its own process, whose warnings (e.g. Celery's
``SecurityWarning`` when running as root) go to its log file, not to pytest.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from celery import Celery
from click.testing import CliRunner

import celery_app
from jobmetrics import Aggregator, HdrHistogram
from jobmetrics.cli.celery import SnapshotWriter, load_app
from jobmetrics.cli.celery import command as celery_command
from jobmetrics.integrations.celery import WORKER_INITIALIZING, CeleryReceiver, report_worker_startup

#: Scheduling slack (s) allowed on top of a sleep: pool hand-over and event publishing on a loaded
#: two-core machine.
SLACK = 1.0
#: How much of a task may run before its task-started is stamped (s), see the module docstring.
EARLY = 0.1
#: Bound (s) of every wait for the cluster.
WAIT = 60.0
#: Bound (s) of the wait for the command's first answer: in a fresh environment it may compile the
#: numba kernels first (about 40 s on a loaded two-core machine).
STARTUP = 180.0

TESTS = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------- helpers
def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _offline_app() -> Celery:
    return Celery("offline", broker="memory://", set_as_current=False)


def _buckets(h: HdrHistogram) -> list[tuple[float, float]]:
    """Every recorded value as its bucket ``(lowest, highest)`` in seconds, sorted."""
    out: list[tuple[float, float]] = []
    for index in np.flatnonzero(h.counts).tolist():
        lo, hi = h.bucket_range(index)
        out.extend([(lo / 1e6, hi / 1e6)] * int(h.counts[index]))
    return out


def assert_durations(h: HdrHistogram, expected: Sequence[tuple[float, float]], what: str) -> None:
    """Each recorded duration's bucket meets its expected interval ``[low, high]`` (seconds);
    both sorted, so the k-th smallest bucket is matched with the k-th smallest interval."""
    got = _buckets(h)
    want = sorted(expected)
    assert len(got) == len(want), f"{what}: {len(got)} durations recorded, expected {len(want)}"
    for (lo, hi), (low, high) in zip(got, want, strict=True):
        assert hi >= low and lo <= high, f"{what}: bucket [{lo:.4f}, {hi:.4f}] s outside [{low}, {high}] s"


def sleeps(*seconds: float) -> list[tuple[float, float]]:
    """The intervals a task sleeping ``seconds`` may take in event time."""
    return [(s - EARLY, s + SLACK) for s in seconds]


def wait_for(
    predicate: Callable[[], bool], what: str, logs: Sequence[Path] = (), timeout: float = WAIT
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists()
            )
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tails}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kill_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Stop ``proc`` and every process of its group: SIGTERM, then SIGKILL after ``grace`` s."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        # the leader is gone; its children (prefork pool) may not be
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except OSError:
        return 0, b""


# ---------------------------------------------------------------------------- mapping, offline
def test_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("celery", "celery.signals"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "jobmetrics.integrations.celery")
    with pytest.raises(ImportError, match=r"pip install 'jobmetrics\[celery\]'"):
        importlib.import_module("jobmetrics.integrations.celery")


def test_docstring_example() -> None:
    import doctest

    import jobmetrics.integrations.celery as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_options_are_validated() -> None:
    app, agg = _offline_app(), Aggregator()
    with pytest.raises(ValueError, match="endpoint_by must be 'queue' or 'task', got 'host'"):
        CeleryReceiver(app, agg, endpoint_by="host")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heartbeat_expiry must be positive, got 0"):
        CeleryReceiver(app, agg, heartbeat_expiry=0)
    with pytest.raises(TypeError, match=r"aggregator must be a jobmetrics\.Aggregator, got dict"):
        CeleryReceiver(app, {})  # type: ignore[arg-type]
    assert "endpoint_by='task'" in repr(CeleryReceiver(app, agg, endpoint_by="task"))


def test_task_lifecycles() -> None:
    agg = Aggregator(allowed_lateness=None)
    rx = CeleryReceiver(_offline_app(), agg)
    ev = rx.handle
    # success, with the worker's task-received before the client's task-sent (held, then the
    # queue comes from task-sent and the time from the earlier of the two)
    ev({"type": "task-received", "uuid": "a", "name": "add", "hostname": "w", "timestamp": 10.002})
    ev({"type": "task-started", "uuid": "a", "hostname": "w", "timestamp": 10.003})
    ev({"type": "task-sent", "uuid": "a", "name": "add", "queue": "math", "timestamp": 10.004})
    ev({"type": "task-succeeded", "uuid": "a", "hostname": "w", "timestamp": 11.003})
    ev({"type": "task-succeeded", "uuid": "a", "hostname": "w", "timestamp": 11.003})  # duplicate
    # retry: the retry's task-sent (from the task) comes before task-retried (counted once)
    ev({"type": "task-sent", "uuid": "b", "name": "add", "queue": "math", "timestamp": 20.0})
    ev({"type": "task-received", "uuid": "b", "name": "add", "hostname": "w", "timestamp": 20.1})
    ev({"type": "task-started", "uuid": "b", "hostname": "w", "timestamp": 20.2})
    ev({"type": "task-sent", "uuid": "b", "name": "add", "queue": "math", "retries": 1, "timestamp": 20.7})
    ev({"type": "task-retried", "uuid": "b", "hostname": "w", "timestamp": 20.71})
    ev(
        {
            "type": "task-received",
            "uuid": "b",
            "name": "add",
            "hostname": "w",
            "retries": 1,
            "timestamp": 20.72,
        }
    )
    ev({"type": "task-started", "uuid": "b", "hostname": "w", "timestamp": 22.7})
    ev({"type": "task-failed", "uuid": "b", "hostname": "w", "timestamp": 23.7})
    ev({"type": "task-rejected", "uuid": "b", "hostname": "w", "requeue": False, "timestamp": 23.71})
    # revoked while queued, and expired
    ev({"type": "task-sent", "uuid": "c", "name": "add", "queue": "math", "timestamp": 30.0})
    ev({"type": "task-revoked", "uuid": "c", "hostname": "w", "expired": False, "timestamp": 31.0})
    ev({"type": "task-sent", "uuid": "d", "name": "add", "queue": "math", "timestamp": 30.0})
    ev({"type": "task-revoked", "uuid": "d", "hostname": "w", "expired": True, "timestamp": 31.0})
    # an event of a task never seen sent or received: endpoint "unknown", an orphan there
    ev({"type": "task-started", "uuid": "e", "hostname": "w", "timestamp": 32.0})
    ev({"type": "custom-thing", "timestamp": 33.0})
    rx.stop()
    agg.flush()
    t = agg.totals("math")
    assert (t["requests"], t["completed"], t["failed"], t["cancelled"], t["timed_out"], t["retried"]) == (
        4, 1, 1, 1, 1, 1,
    )  # fmt: skip
    assert (t["duplicates"], t["invalid_transitions"], t["orphans"], t["in_queue"], t["in_progress"]) == (
        1, 0, 0, 0, 0,
    )  # fmt: skip
    assert agg.totals("unknown")["orphans"] == 1
    # one execution per attempt that finished: a, and b's second attempt (a retry records none)
    assert_durations(agg.histogram("math", "execution_time"), [(1.0, 1.0)] * 2, "execution")
    # delays: a 10.002 -> 10.003; b 20.0 -> 20.2 and, after the retry, 20.7 -> 22.7
    assert_durations(agg.histogram("math", "delay_time"), [(0.001, 0.001), (0.2, 0.2), (2.0, 2.0)], "delay")
    assert rx.counts["ignored"] == 1
    assert rx.tasks_in_memory() == 5
    rx.tick(now=time.monotonic() + 601)  # finished tasks are forgotten after `retention`
    assert rx.tasks_in_memory() == 1
    rx.tick(now=time.monotonic() + 86_401)  # and tasks in flight without events after `task_ttl`
    assert rx.tasks_in_memory() == 0


def test_without_task_sent_events() -> None:
    """Clients without ``task_send_sent_event``: a task enters its queue at ``task-received``
    (after ``sent_grace``), its queue from the app's routes; a retry at ``task-retried``."""
    app = _offline_app()
    app.conf.task_routes = {"resize": {"queue": "images"}}
    agg = Aggregator(allowed_lateness=None)
    rx = CeleryReceiver(app, agg)
    rx.handle({"type": "task-received", "uuid": "a", "name": "resize", "hostname": "w", "timestamp": 5.0})
    rx.tick(now=time.monotonic() + 2.0)  # past sent_grace: recorded without task-sent
    rx.handle({"type": "task-started", "uuid": "a", "hostname": "w", "timestamp": 5.5})
    rx.handle({"type": "task-retried", "uuid": "a", "hostname": "w", "timestamp": 6.0})
    rx.handle({"type": "task-received", "uuid": "a", "name": "resize", "hostname": "w", "timestamp": 6.1})
    rx.handle({"type": "task-started", "uuid": "a", "hostname": "w", "timestamp": 7.0})
    rx.handle({"type": "task-rejected", "uuid": "a", "hostname": "w", "requeue": True, "timestamp": 7.5})
    rx.handle({"type": "task-started", "uuid": "a", "hostname": "w", "timestamp": 8.0})
    rx.handle({"type": "task-succeeded", "uuid": "a", "hostname": "w", "timestamp": 9.0})
    agg.flush()
    assert agg.endpoints() == ["images", "celery"]  # the worker, seen through its task events
    t = agg.totals("images")
    assert (t["requests"], t["retried"], t["completed"], t["duplicates"], t["invalid_transitions"]) == (
        1,
        2,
        1,
        0,
        0,
    )
    # queued 5.0 -> 5.5; retried 6.0 -> 7.0; rejected with requeue 7.5 -> 8.0
    assert_durations(agg.histogram("images", "delay_time"), [(0.5, 0.5), (1.0, 1.0), (0.5, 0.5)], "delay")


def test_endpoint_by_task() -> None:
    agg = Aggregator(allowed_lateness=None)
    rx = CeleryReceiver(
        _offline_app(), agg, endpoint_by="task", worker_endpoint=lambda host: host.split("@")[0]
    )
    ev = rx.handle
    ev(
        {
            "type": "task-received",
            "uuid": "a",
            "name": "resize",
            "retries": 0,
            "hostname": "gpu@h1",
            "timestamp": 5.0,
        }
    )
    ev({"type": "task-started", "uuid": "a", "hostname": "gpu@h1", "timestamp": 5.5})
    # the client's task-sent of the same attempt, arriving late: not a retry
    ev({"type": "task-sent", "uuid": "a", "name": "resize", "retries": 0, "queue": "q", "timestamp": 5.001})
    ev(
        {
            "type": "task-received",
            "uuid": "b",
            "name": "resize",
            "retries": 0,
            "hostname": "gpu@h1",
            "timestamp": 6.0,
        }
    )
    agg.flush()
    assert agg.endpoints() == ["resize", "gpu"]
    t = agg.totals("resize")
    assert (t["requests"], t["retried"], t["in_queue"], t["in_progress"], t["duplicates"]) == (2, 0, 1, 1, 0)
    assert agg.totals("gpu")["cold_start_count"] == 0


def test_workers_cold_start_states_and_expiry() -> None:
    agg = Aggregator(allowed_lateness=None)
    rx = CeleryReceiver(_offline_app(), agg)
    ev = rx.handle
    ev({"type": WORKER_INITIALIZING, "hostname": "w1", "timestamp": 100.0})
    assert rx.workers() == {"initializing": 1, "idle": 0, "running": 0}
    ev({"type": "worker-online", "hostname": "w1", "freq": 2.0, "active": 0, "timestamp": 103.0})
    ev({"type": "task-sent", "uuid": "a", "name": "t", "queue": "celery", "timestamp": 104.0})
    ev({"type": "task-started", "uuid": "a", "hostname": "w1", "timestamp": 105.0})
    assert rx.workers() == {"initializing": 0, "idle": 0, "running": 1}
    ev({"type": "worker-heartbeat", "hostname": "w1", "freq": 2.0, "active": 1, "timestamp": 106.0})
    ev({"type": "task-succeeded", "uuid": "a", "hostname": "w1", "timestamp": 108.0})
    assert rx.workers() == {"initializing": 0, "idle": 1, "running": 0}
    # a heartbeat counting a task that sent no events: RUNNING until a heartbeat says 0
    ev({"type": "worker-heartbeat", "hostname": "w1", "freq": 2.0, "active": 1, "timestamp": 110.0})
    assert rx.workers()["running"] == 1
    ev({"type": "worker-heartbeat", "hostname": "w1", "freq": 2.0, "active": 0, "timestamp": 112.0})
    # a second worker that is online without announcing its start: no cold start
    ev({"type": "worker-online", "hostname": "w2", "freq": 2.0, "active": 0, "timestamp": 112.0})
    ev({"type": "worker-offline", "hostname": "w2", "timestamp": 114.0})
    assert rx.workers() == {"initializing": 0, "idle": 1, "running": 0}
    # w1 falls silent: OFFLINE at its last event + 2 x freq, once that long passed here
    rx.tick(now=time.monotonic() + 3.0)
    assert rx.workers()["idle"] == 1
    rx.tick(now=time.monotonic() + 5.0)
    assert rx.workers() == {"initializing": 0, "idle": 0, "running": 0}
    agg.flush()
    t = agg.totals("celery")
    assert (t["cold_start_count"], t["cold_start_failures"], t["workers_lost"]) == (1, 0, 0)
    assert_durations(agg.histogram("celery", "cold_start_time"), [(3.0, 3.0)], "cold start")
    row = agg.snapshot().to_pylist()[0]
    # w1: initializing 100-103, running 105-108 (task events) and 110-112 (heartbeats), idle
    # 103-105, 108-110 and 112-116 (OFFLINE at 112 + 2 x 2 s); w2 idle 112-114
    assert row["workers_initializing_us"] == 3_000_000
    assert row["workers_running_us"] == (3 + 2) * 1_000_000
    assert row["workers_idle_us"] == (2 + 2 + 4 + 2) * 1_000_000
    assert (row["workers_running_max"], row["workers_idle_max"]) == (1, 2)


def test_capture_loop_logs_an_event_it_cannot_map(caplog: pytest.LogCaptureFixture) -> None:
    def broken(host: str) -> str:
        raise LookupError(f"no endpoint for {host}")

    rx = CeleryReceiver(_offline_app(), Aggregator(), worker_endpoint=broken)
    rx._handle_logged({"type": "worker-online", "hostname": "w1", "timestamp": 1.0})
    rx._handle_logged({"type": "task-sent", "uuid": "a", "name": "t", "timestamp": 2.0})
    assert rx.counts == {"worker-online": 1, "errors": 1, "task-sent": 1}
    assert "cannot map the Celery event" in caplog.text


def test_worker_startup_is_announced_only_with_events_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.signals import celeryd_init

    app = _offline_app()
    sent: list[tuple[str | None, str]] = []

    class Dispatcher:
        def __init__(self, hostname: str | None) -> None:
            self.hostname = hostname

        def __enter__(self) -> Dispatcher:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def send(self, type: str) -> None:
            sent.append((self.hostname, type))

    monkeypatch.setattr(app.events, "default_dispatcher", lambda hostname=None: Dispatcher(hostname))
    connected = len(celeryd_init.receivers)
    announce = report_worker_startup(app)
    report_worker_startup(app)  # once per app, however often it is called
    try:
        assert len(celeryd_init.receivers) == connected + 1
        # called as Celery's celeryd_init calls it (not sent: other apps' receivers would run)
        announce(sender="w1@h", conf=app.conf, options={})
        assert sent == []
        announce(sender="w1@h", conf=app.conf, options={"task_events": True})
        assert sent == [("w1@h", WORKER_INITIALIZING)]
    finally:
        celeryd_init.disconnect(dispatch_uid=f"jobmetrics-worker-startup-{id(app)}")


def test_receiver_keeps_the_senders_timestamp() -> None:
    """Celery's receiver shifts ``timestamp`` by the difference of UTC offsets; ours does not."""
    app = _offline_app()
    rx = CeleryReceiver(app, Aggregator())
    with app.connection_for_read() as conn:
        ours = rx._make_receiver(conn)
        theirs = app.events.Receiver(conn)
        far = {"type": "task-started", "uuid": "a", "hostname": "w", "clock": 1, "utcoffset": -14}
        _, body = ours.event_from_message(dict(far, timestamp=1000.0))
        assert body["timestamp"] == 1000.0
        _, shifted = theirs.event_from_message(dict(far, timestamp=1000.0))
        assert shifted["timestamp"] != 1000.0  # no machine runs at UTC+14 here


def test_snapshot_writer_writes_each_window_once(tmp_path: Path) -> None:
    agg = Aggregator(window="60s", allowed_lateness="0s")
    writer = SnapshotWriter(agg, tmp_path)
    assert writer.write() is None
    for k in range(3):  # windows 0, 60 s, 120 s
        agg.record(ts=k * 60_000 + 1_000, endpoint="e", job_id=f"j{k}", state="IN_QUEUE")
    first = writer.write()  # windows 0 and 60 s are final
    agg.record(ts=200_000, endpoint="e", job_id="j3", state="IN_QUEUE")
    agg.flush()
    second = writer.write(last=True)  # window 120 s (final now) and 180 s (open)
    assert first is not None and second is not None
    a, b = pq.read_table(first), pq.read_table(second)
    assert a.column("final").to_pylist() == [True, True]
    assert b.column("final").to_pylist() == [True, False]
    both = pa.concat_tables([a, b])
    assert sum(both.column("requests").to_pylist()) == 4
    assert len(set(both.column("window_start").to_pylist())) == 4


def test_cli_checks_its_options() -> None:
    runner = CliRunner()
    result = runner.invoke(celery_command, ["--broker", "memory://", "--snapshot-every", "1"])
    assert result.exit_code == 2 and "--snapshot-every needs --snapshot-dir" in result.output
    result = runner.invoke(celery_command, ["--broker", "memory://", "--window", "soon"])
    assert result.exit_code == 2 and "window" in result.output
    result = runner.invoke(celery_command, ["--broker", "memory://", "--allowed-lateness", "1s"])
    assert result.exit_code == 2 and "must be at least 2s, got '1s'" in result.output
    result = runner.invoke(celery_command, [], env={"CELERY_BROKER_URL": None})
    assert result.exit_code == 2 and "give the broker URL (--broker or CELERY_BROKER_URL)" in result.output
    result = runner.invoke(celery_command, ["--app", "no_such_module_here"])
    assert result.exit_code == 2 and "cannot load the Celery app 'no_such_module_here'" in result.output


def test_cli_loads_the_app_as_celery_does() -> None:
    assert load_app("celery_app", None) is celery_app.app  # the module's `app`
    assert load_app("celery_app:app", None) is celery_app.app
    with pytest.raises(click.BadParameter, match="'celery_app:QUEUES' is not a Celery app but tuple"):
        load_app("celery_app:QUEUES", None)
    fresh = load_app(None, "memory://")
    assert fresh.conf.broker_url == "memory://" and fresh.conf.task_default_queue == "celery"


# ---------------------------------------------------------------------------- a real cluster
def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        for args in (["apt-get", "install", "-y", "-qq", "redis-server"], ["apt-get", "update", "-qq"]):
            subprocess.run(args, capture_output=True, timeout=600, check=False)
            found = shutil.which("redis-server")
            if found:
                break
        if found is None:
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "redis-server"], capture_output=True, timeout=600
            )
            found = shutil.which("redis-server")
    if found is None:
        pytest.skip("redis-server is not installed and cannot be installed here (no root or no apt-get)")
    return found


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="jobmetrics-celery-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _spawn(
    request: pytest.FixtureRequest, args: list[str], log: Path, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start a process in its own process group, killed with its group at the end of the module."""
    out = log.open("wb")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
    out.close()
    request.addfinalizer(lambda: kill_group(proc))
    return proc


@pytest.fixture(scope="module")
def redis_url(request: pytest.FixtureRequest, workdir: Path) -> str:
    import redis

    server = _redis_server()
    port = free_port()
    data = workdir / "redis"
    data.mkdir()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    _spawn(request, [*args, "--dir", str(data)], workdir / "redis.log")
    client = redis.Redis(host="127.0.0.1", port=port)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    wait_for(up, "redis-server to answer", [workdir / "redis.log"], timeout=20)
    client.close()
    return f"redis://127.0.0.1:{port}/0"


@dataclass
class Run:
    """What the end-to-end scenario leaves for the checks."""

    by_queue: Aggregator
    by_task: Aggregator
    launched: float  # wall clock just before the worker process started
    online_seen: float  # wall clock when the receiver had seen it online
    health: dict[str, Any]  # the command's /health once every task had finished
    metrics: str  # its /metrics then
    health_after_stop: dict[str, Any]  # /health after the worker stopped
    cli_code: int | None
    cli_log: str
    snapshot_files: list[Path]
    workers_after_stop: dict[str, int]


@pytest.fixture(scope="module")
def run(request: pytest.FixtureRequest, redis_url: str, workdir: Path) -> Run:
    app = celery_app.app
    app.conf.update(broker_url=redis_url, broker_read_url=redis_url, broker_write_url=redis_url)
    env = dict(os.environ, JOBMETRICS_CELERY_BROKER=redis_url, PYTHONPATH=str(TESTS))
    by_queue, by_task = Aggregator(allowed_lateness=None), Aggregator(allowed_lateness=None)
    rx_q = CeleryReceiver(app, by_queue)
    rx_t = CeleryReceiver(app, by_task, endpoint_by="task", worker_endpoint="workers")
    for rx in (rx_q, rx_t):
        rx.start()
        request.addfinalizer(rx.stop)
    worker_log, cli_log = workdir / "worker.log", workdir / "cli.log"
    logs = [worker_log, cli_log]

    # the command, in its own process
    port = free_port()
    snapshots = workdir / "snapshots"
    cli_args = [
        sys.executable, "-c", "from jobmetrics.cli import main; main()", "celery", "--broker", redis_url,
        "--port", str(port), "--allowed-lateness", "2s", "--snapshot-dir", str(snapshots),
        "--snapshot-every", "0.05",
    ]  # fmt: skip
    cli = _spawn(request, cli_args, cli_log, env=env)
    base = f"http://127.0.0.1:{port}"

    def health() -> dict[str, Any]:
        code, body = http_get(f"{base}/health")
        return json.loads(body) if code == 200 else {}

    wait_for(lambda: rx_q.ready.is_set() and rx_t.ready.is_set(), "the receivers to connect", logs)
    wait_for(lambda: health().get("celery", {}).get("connected", False), "the command", logs, STARTUP)

    # the worker
    launched = time.time()
    worker_args = [
        sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-E", "--pool=prefork", "-c", "1",
        "--without-gossip", "--without-mingle", "-Q", ",".join(celery_app.QUEUES),
        "-n", f"w{os.getpid()}@jobmetrics-test", "--loglevel=WARNING",
    ]  # fmt: skip
    worker = _spawn(request, worker_args, worker_log, cwd=TESTS, env=env)
    wait_for(lambda: rx_q.workers()["idle"] == 1, "the worker to come online", logs)
    online_seen = time.time()

    def seen(rx: CeleryReceiver, kind: str, n: int) -> Callable[[], bool]:
        return lambda: rx.counts.get(kind, 0) >= n

    # a task retried once (countdown RETRY_COUNTDOWN), the worker otherwise idle
    celery_app.flaky.delay(0.2)
    wait_for(seen(rx_q, "task-succeeded", 1), "the retried task", logs)
    # a long task on the other queue; while it runs, one task revoked and one expiring in the queue
    celery_app.sleep.apply_async((2.0,), queue="other")
    wait_for(seen(rx_q, "task-started", 3), "the long task to start", logs)
    revoked = celery_app.sleep.delay(0.2)
    app.control.revoke(revoked.id)
    celery_app.sleep.apply_async((0.2,), expires=0.5)
    celery_app.sleep.delay(0.3)
    celery_app.sleep.delay(0.3)
    celery_app.fail.delay(0.2)
    for kind, n in (("task-succeeded", 4), ("task-failed", 1), ("task-revoked", 2)):
        for rx in (rx_q, rx_t):
            wait_for(seen(rx, kind, n), f"{n} {kind} event(s)", logs)

    def finished() -> bool:
        jobs = health().get("jobs", {})
        return (jobs.get("completed"), jobs.get("failed"), jobs.get("cancelled"), jobs.get("timedOut")) == (
            4, 1, 1, 1,
        )  # fmt: skip

    wait_for(finished, "the command's /health to count every task", logs)
    final_health = health()
    metrics = http_get(f"{base}/metrics")[1].decode()

    # warm shutdown: the worker says worker-offline
    worker.send_signal(signal.SIGTERM)
    worker.wait(WAIT)
    wait_for(lambda: sum(rx_q.workers().values()) == 0, "worker-offline", logs)
    wait_for(
        lambda: sum(health().get("celery", {}).get("workersNow", {"x": 1}).values()) == 0, "the command", logs
    )
    health_after_stop = health()
    cli.send_signal(signal.SIGINT)
    try:
        code: int | None = cli.wait(WAIT)
    except subprocess.TimeoutExpired:
        code = None
    for rx in (rx_q, rx_t):
        rx.stop()
    by_queue.flush()
    by_task.flush()
    return Run(
        by_queue=by_queue,
        by_task=by_task,
        launched=launched,
        online_seen=online_seen,
        health=final_health,
        metrics=metrics,
        health_after_stop=health_after_stop,
        cli_code=code,
        cli_log=cli_log.read_text(errors="replace"),
        snapshot_files=sorted(snapshots.glob("*.parquet")),
        workers_after_stop=rx_q.workers(),
    )


def test_command_stops_cleanly_on_sigterm(
    request: pytest.FixtureRequest, redis_url: str, workdir: Path
) -> None:
    port = free_port()
    log = workdir / "cli-sigterm.log"
    args = [sys.executable, "-c", "from jobmetrics.cli import main; main()", "celery", "--broker", redis_url]
    cli = _spawn(request, [*args, "--port", str(port)], log)

    def connected() -> bool:
        code, body = http_get(f"http://127.0.0.1:{port}/health")
        return code == 200 and bool(json.loads(body)["celery"]["connected"])

    wait_for(connected, "the command to connect", [log], STARTUP)
    assert http_get(f"http://127.0.0.1:{port}/nowhere")[0] == 404
    assert http_get(f"http://127.0.0.1:{port}/health?endpoint=nope")[0] == 404
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(WAIT) == 0, log.read_text()
    assert re.search(r"stopped after \d+ events", log.read_text())


def test_receiver_waits_for_the_broker_and_reconnects(request: pytest.FixtureRequest, workdir: Path) -> None:
    server, port = _redis_server(), free_port()
    folder = workdir / "redis-reconnect"
    folder.mkdir()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(folder)]
    rx = CeleryReceiver(Celery("r", broker=f"redis://127.0.0.1:{port}/0", set_as_current=False), Aggregator())
    rx.start()
    request.addfinalizer(rx.stop)
    time.sleep(1.0)
    assert not rx.ready.is_set()  # no broker yet: retrying
    broker = _spawn(request, args, folder / "1.log")
    assert rx.ready.wait(WAIT), "not connected once the broker is up"
    kill_group(broker)
    wait_for(lambda: not rx.ready.is_set(), "the receiver to notice the broker is gone", timeout=30)
    _spawn(request, args, folder / "2.log")
    assert rx.ready.wait(WAIT), "not connected again"
    rx.stop()
    assert rx._thread is None  # the thread ended


COUNTERS = ("requests", "completed", "failed", "cancelled", "timed_out", "retried")
QUALITY = (
    "duplicates",
    "invalid_transitions",
    "orphans",
    "late_events",
    "expired",
    "in_queue",
    "in_progress",
)


def _counters(agg: Aggregator, endpoint: str) -> tuple[int, ...]:
    t = agg.totals(endpoint)
    return tuple(t[c] for c in COUNTERS)


def _clean(agg: Aggregator) -> None:
    for endpoint in agg.endpoints():
        t = agg.totals(endpoint)
        assert {q: t[q] for q in QUALITY} == dict.fromkeys(QUALITY, 0), endpoint
    assert agg.invalid_transition_counts() == {}
    assert agg.rejections.total == 0


def test_counters_by_queue(run: Run) -> None:
    agg = run.by_queue
    assert sorted(agg.endpoints()) == ["other", "work"]
    # work: flaky (retried once), revoked, expired, two successes, one failure
    assert _counters(agg, "work") == (6, 3, 1, 1, 1, 1)
    assert _counters(agg, "other") == (1, 1, 0, 0, 0, 0)
    _clean(agg)


def test_counters_by_task(run: Run) -> None:
    agg = run.by_task
    assert sorted(agg.endpoints()) == ["fail", "flaky", "sleep", "workers"]
    assert _counters(agg, "sleep") == (5, 3, 0, 1, 1, 0)
    assert _counters(agg, "fail") == (1, 0, 1, 0, 0, 0)
    assert _counters(agg, "flaky") == (1, 1, 0, 0, 0, 1)
    _clean(agg)


def test_execution_times_match_the_sleeps(run: Run) -> None:
    q, t = run.by_queue, run.by_task
    # one execution time per attempt that finished (SPEC §3): flaky's first attempt ended in a
    # retry, which records none
    assert_durations(q.histogram("work", "execution_time"), sleeps(0.2, 0.2, 0.3, 0.3), "work")
    assert_durations(q.histogram("other", "execution_time"), sleeps(2.0), "other")
    assert_durations(t.histogram("sleep", "execution_time"), sleeps(0.3, 0.3, 2.0), "sleep")
    assert_durations(t.histogram("fail", "execution_time"), sleeps(0.2), "fail")
    assert_durations(t.histogram("flaky", "execution_time"), sleeps(0.2), "flaky")


def test_delay_times(run: Run) -> None:
    t = run.by_task
    # flaky on an idle worker: picked up at once; its retry waits the countdown (published just
    # after the countdown's start: up to 0.1 s of it may precede task-sent)
    countdown = celery_app.RETRY_COUNTDOWN
    assert_durations(
        t.histogram("flaky", "delay_time"),
        [(0.0, SLACK), (countdown - 0.1, countdown + SLACK)],
        "flaky delay",
    )
    # the long task on an idle worker; every start has its delay
    assert_durations(run.by_queue.histogram("other", "delay_time"), [(0.0, SLACK)], "other delay")
    assert run.by_queue.histogram("work", "delay_time").total_count == 5
    # the tasks queued behind the long one waited for it
    assert run.by_task.histogram("sleep", "delay_time").max / 1e6 >= 1.0


def test_worker_cold_start_and_states(run: Run) -> None:
    agg = run.by_queue
    t = agg.totals("work")  # workers go to the default queue's endpoint
    assert (t["cold_start_count"], t["cold_start_failures"], t["workers_lost"]) == (1, 0, 0)
    # from the worker's celeryd_init (after `launched`) to its worker-online (before `online_seen`)
    bound = run.online_seen - run.launched
    assert_durations(agg.histogram("work", "cold_start_time"), [(0.001, bound)], "cold start")
    snapshot = agg.snapshot()
    rows = snapshot.filter(pc.equal(snapshot.column("endpoint"), "work")).to_pylist()
    assert max(r["workers_initializing_max"] for r in rows) == 1
    assert max(r["workers_idle_max"] for r in rows) == 1
    assert max(r["workers_running_max"] for r in rows) == 1
    # RUNNING from each task-started to the task's end (one child), so about the six sleeps
    running = sum(r["workers_running_us"] for r in rows) / 1e6
    executed = 0.2 + 0.2 + 2.0 + 0.3 + 0.3 + 0.2
    assert executed - 6 * EARLY <= running <= executed + 6 * SLACK
    assert run.workers_after_stop == {"initializing": 0, "idle": 0, "running": 0}
    assert run.by_task.totals("workers")["cold_start_count"] == 1


def test_command_serves_health_metrics_and_snapshots(run: Run) -> None:
    jobs = run.health["jobs"]
    assert {k: jobs[k] for k in ("requests", "completed", "failed", "cancelled", "timedOut", "retried")} == {
        "requests": 7, "completed": 4, "failed": 1, "cancelled": 1, "timedOut": 1, "retried": 1,
    }  # fmt: skip
    assert (jobs["inQueue"], jobs["inProgress"]) == (0, 0)
    assert run.health["coldStarts"] == 1
    assert run.health["celery"]["workersNow"] == {"initializing": 0, "idle": 1, "running": 0}
    assert run.health_after_stop["celery"]["workersNow"] == {"initializing": 0, "idle": 0, "running": 0}
    assert 'jobmetrics_requests_total{endpoint="work"} 6.0' in run.metrics
    assert 'jobmetrics_requests_total{endpoint="other"} 1.0' in run.metrics
    assert run.cli_code == 0, run.cli_log
    assert "stopped after" in run.cli_log
    # the snapshot files hold each (endpoint, window) once and, together, every request
    assert run.snapshot_files, run.cli_log
    table = pa.concat_tables([pq.read_table(p) for p in run.snapshot_files])
    keys = list(
        zip(table.column("endpoint").to_pylist(), table.column("window_start").to_pylist(), strict=True)
    )
    assert len(keys) == len(set(keys))
    requests: dict[str, int] = {}
    for e, n in zip(table.column("endpoint").to_pylist(), table.column("requests").to_pylist(), strict=True):
        requests[e] = requests.get(e, 0) + n
    assert requests == {"work": 6, "other": 1, "celery": 0}
