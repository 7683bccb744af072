"""The Celery app of tests/test_celery.py: tasks that sleep and then succeed, fail or retry.

The test runs a real worker on it (``celery -A celery_app worker -E …`` with ``tests/`` as the
working directory) and sends tasks from its own process through the same module. The broker URL
comes from ``JOBMETRICS_CELERY_BROKER`` (the test starts its own Redis).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from jobmetrics.integrations.celery import report_worker_startup

#: The queues the worker consumes; tasks go to the first unless sent elsewhere.
QUEUES = ("work", "other")

#: Countdown (seconds) of the retry of :func:`flaky`.
RETRY_COUNTDOWN = 0.5

app = Celery("celery_app", broker=os.environ.get("JOBMETRICS_CELERY_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue=QUEUES[0],
    task_send_sent_event=True,  # task-sent: when a task enters its queue
    worker_send_task_events=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # the default JSON serializer; no pickle
    accept_content=["json"],
)
report_worker_startup(app)


@app.task(name="sleep")
def sleep(seconds: float) -> float:
    """Sleep ``seconds``, then succeed."""
    time.sleep(seconds)
    return seconds


@app.task(name="fail")
def fail(seconds: float) -> None:
    """Sleep ``seconds``, then fail."""
    time.sleep(seconds)
    raise RuntimeError(f"failed on purpose after {seconds} s")


@app.task(name="flaky", bind=True, max_retries=3)
def flaky(self: Any, seconds: float) -> float:
    """Sleep ``seconds``; the first attempt asks for a retry in :data:`RETRY_COUNTDOWN` seconds,
    the second succeeds."""
    time.sleep(seconds)
    if self.request.retries == 0:
        raise self.retry(countdown=RETRY_COUNTDOWN)
    return seconds
