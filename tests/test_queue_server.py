"""Integration test of examples/queue_server: a real server process on 127.0.0.1, real HTTP.

The server starts on a free port with one-second metric windows and no random failures; the test
submits jobs whose fates are fixed by their input (completed, failed then retried, failed for
good, timed out, cancelled while running), waits for them to finish, and checks that ``/health``
and ``/metrics`` report exactly what the server did.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

SERVER = Path(__file__).resolve().parents[1] / "examples" / "queue_server" / "server.py"
STARTUP_S = 60.0  # the first start may compile numba kernels
SETTLE_S = 20.0

T = TypeVar("T")


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise TimeoutError(f"no output from the server within {timeout}s")
        return proc.stdout.readline()
    finally:
        sel.close()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    args = [
        sys.executable, str(SERVER), "--port", "0", "--endpoint", "test-ep", "--window", "1s",
        "--tick", "100ms", "--workers", "2", "--cold-start", "0.2", "--fail-rate", "0",
        "--max-retries", "1", "--execution-timeout", "1.5", "--idle-timeout", "120",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _read_line(proc, STARTUP_S)
        assert "listening on http://127.0.0.1:" in line, (line, proc.poll())
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
            status = response.status
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read().decode())
    return status, (json.loads(raw) if "json" in kind else raw)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, show: Callable[[], Any] = str) -> T:
    """Poll ``check`` until it returns something; fail after ``timeout`` showing ``show()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {show()}")
        time.sleep(0.1)


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = call(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_jobs_health_and_metrics(base_url: str) -> None:
    b = base_url
    ok = [call(f"{b}/run", "POST", {"input": {"work": 0.05}, "webhook": True})[1]["id"] for _ in range(5)]
    retried = call(f"{b}/run", "POST", {"input": {"work": 0.05, "fail_attempts": 1}})[1]["id"]
    hook_500 = f"{b}/webhook-sink?status=500"
    failed = call(f"{b}/run", "POST", {"input": {"work": 0.05, "fail_attempts": 9}, "webhook": hook_500})[1][
        "id"
    ]
    slow = call(f"{b}/run", "POST", {"input": {"work": 10}})[1]["id"]
    doomed = call(f"{b}/run", "POST", {"input": {"work": 10}})[1]["id"]

    def status(job: str) -> dict[str, Any]:
        code, body = call(f"{b}/status/{job}")
        assert code == 200
        return dict(body)

    wait_for(lambda: status(doomed)["status"] == "IN_PROGRESS" or None, SETTLE_S, "the job to start")
    code, body = call(f"{b}/cancel/{doomed}", "POST")
    assert (code, body["status"]) == (200, "CANCELLED")
    assert call(f"{b}/cancel/{doomed}", "POST")[0] == 409
    assert call(f"{b}/status/nope")[0] == 404
    assert call(f"{b}/run", "POST", ["not", "a", "job"])[0] == 400

    final = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
    everything = [*ok, retried, failed, slow, doomed]
    wait_for(lambda: all(status(j)["status"] in final for j in everything) or None, SETTLE_S, "jobs to end")
    assert [status(j)["status"] for j in ok] == ["COMPLETED"] * 5
    assert (status(retried)["status"], status(retried)["attempts"]) == ("COMPLETED", 2)
    assert (status(failed)["status"], status(failed)["attempts"]) == ("FAILED", 2)
    assert status(slow)["status"] == "TIMED_OUT"
    assert status(doomed)["status"] == "CANCELLED"

    expected_jobs = {
        "requests": 9, "completed": 6, "failed": 3, "cancelled": 1, "timedOut": 1, "retried": 2,
        "inQueue": 0, "inProgress": 0,
    }  # fmt: skip
    # webhooks: 5 delivered (200), and 3 attempts answered 500 for the job that failed for good
    expected_hooks = {"requests": 8, "succeeded": 5, "failed": 3}

    def settled() -> dict[str, Any] | None:
        code, h = call(f"{b}/health")
        assert code == 200
        done = h["jobs"] == expected_jobs and h["webhooks"] == expected_hooks
        # workers now, and over the last complete one-second window: wait for one after the jobs
        quiet = h["workers"]["idle"] == 2 and h["workers"]["running"] == 0
        quiet = quiet and h["workersMax"]["idle"] == 2 and h["workersMax"]["running"] == 0
        return h if done and quiet else None

    h = wait_for(settled, SETTLE_S, "/health to report every event", lambda: call(f"{b}/health")[1])
    assert h["endpoints"] == ["test-ep"]
    assert h["coldStarts"] == 2 and h["server"]["workers"] == 2
    assert h["workersAverage"] == {**dict.fromkeys(h["workersAverage"], 0.0), "idle": 2.0}

    m = metrics(b)

    def get(name: str, **labels: str) -> float:
        return m[(name, tuple(sorted({"endpoint": "test-ep", **labels}.items())))]

    assert get("jobmetrics_requests_total") == 9
    for outcome, n in (("completed", 6), ("failed", 3), ("cancelled", 1), ("timed_out", 1)):
        assert get("jobmetrics_request_outcomes_total", outcome=outcome) == n
    assert get("jobmetrics_retries_total") == 2
    assert get("jobmetrics_cold_starts_total") == 2
    assert get("jobmetrics_webhook_responses_total", outcome="succeeded") == 5
    assert get("jobmetrics_webhook_responses_total", outcome="failed") == 3
    assert get("jobmetrics_jobs_in_queue") == 0 and get("jobmetrics_jobs_in_progress") == 0
    assert get("jobmetrics_workers_max", state="idle") == 2
    assert get("jobmetrics_workers", state="idle") == 2 and get("jobmetrics_workers", state="running") == 0
    # execution time per attempt that completed or failed: 5 + 2 + 2; the 10 s jobs never finished
    assert get("jobmetrics_execution_time_seconds_count") == 9
    assert get("jobmetrics_execution_time_seconds_bucket", le="0.025") == 0  # 0.05 s of work each
    assert get("jobmetrics_execution_time_seconds_bucket", le="5.0") == 9
    assert 9 * 0.05 <= get("jobmetrics_execution_time_seconds_sum") < 9 * 5.0
    # delay time per attempt picked up: 5 + 2 + 2 + 1 + 1
    assert get("jobmetrics_delay_time_seconds_count") == 11
    # cold starts of 0.2 s each (plus scheduling; generous bounds for a loaded machine)
    assert get("jobmetrics_cold_start_time_seconds_count") == 2
    assert get("jobmetrics_cold_start_time_seconds_bucket", le="0.1") == 0
    assert get("jobmetrics_cold_start_time_seconds_bucket", le="5.0") == 2
    p90 = get("jobmetrics_recent_execution_time_seconds", quantile="0.9")
    assert 0.045 <= p90 < 5.0
