"""Job metrics of a Celery cluster, from its event stream.

:class:`CeleryReceiver` consumes the events Celery workers (and clients) publish — with Celery's
own :class:`celery.events.receiver.EventReceiver` (``app.events.Receiver``) — maps each task and
worker event onto a SPEC event and records it in an :class:`~jobmetrics.Aggregator`. The mapping,
what Celery cannot tell and the comparison with Flower are in ``docs/celery.md``.

Task events become job events of the endpoint chosen by ``endpoint_by``: the task's queue
(``"queue"``, default) or its name (``"task"``). Only ``task-sent`` and ``task-received`` carry a
task's queue and name, so the receiver remembers them per task id for the later events.

Worker events (``worker-online``, ``worker-heartbeat``, ``worker-offline``) become worker events of
``worker_endpoint``: Celery's events do not say which queues a worker consumes. A worker is
``RUNNING`` while it executes at least one task (from the task events, corrected by each
heartbeat's ``active`` count) and ``IDLE`` otherwise. Its cold start is measured only when the
worker announces its start: :func:`report_worker_startup` in the Celery app sends a
``worker-initializing`` event when the worker begins to start up (Celery's ``celeryd_init``); the
cold start ends at ``worker-online`` (the worker is connected and about to consume).

Times are the events' own ``timestamp`` (the sender's ``time.time()``, seconds since the epoch):
event time, as the SPEC asks. Celery's receiver would shift it by the difference between the
sender's and the receiver's UTC offsets (``utcoffset``); that shift is for showing local times
and is turned off here, so machines in different time zones agree.

Needs the ``celery`` extra: ``pip install 'jobmetrics[celery]'``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

try:
    import celery
    from celery.signals import celeryd_init
except ImportError as exc:  # exercised by the tests with celery hidden
    raise ImportError(
        "jobmetrics.integrations.celery needs Celery; install it with pip install 'jobmetrics[celery]'"
    ) from exc

from ..aggregator import Aggregator

__all__ = [
    "WORKER_INITIALIZING",
    "CeleryReceiver",
    "report_worker_startup",
]

_log = logging.getLogger(__name__)

#: Type of the event :func:`report_worker_startup` sends when a worker begins to start up.
WORKER_INITIALIZING = "worker-initializing"

#: Celery's rule (``celery.events.state``): a worker is gone when no heartbeat came for 2 x freq.
_HEARTBEAT_EXPIRY = 2.0

#: Seconds between attempts to reach the broker: first, and at most (doubling in between).
_RETRY_FIRST, _RETRY_MAX = 1.0, 30.0

_QUEUED = "IN_QUEUE"
_STARTED = "IN_PROGRESS"
_WORKER_TYPES = frozenset({WORKER_INITIALIZING, "worker-online", "worker-heartbeat", "worker-offline"})
_RETRYABLE = frozenset({"FAILED", "TIMED_OUT"})
_FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


@dataclass(slots=True)
class _Task:
    """What the receiver remembers of one task: its endpoint, phase and the worker running it."""

    endpoint: str
    phase: str
    worker: str | None = None
    retries: int = 0  # the attempt's ``retries`` (Celery counts retries from 0)
    touched: float = 0.0  # receiver's clock (s) of the last event, for forgetting


_Event = Mapping[str, Any]
_MaybeTask = _Task | None


@dataclass(slots=True)
class _Held:
    """A task first seen at ``task-received``, waiting for its ``task-sent``."""

    received: _Event
    since: float  # receiver's clock (s)
    later: list[_Event] = field(default_factory=list)


@dataclass(slots=True)
class _Worker:
    """One worker as the receiver sees it."""

    state: str | None = None
    active: set[str] = field(default_factory=set)  # tasks started and not finished (task events)
    extra: int = 0  # tasks its last heartbeat counted beyond those (tasks without events)
    freq: float = 2.0  # heartbeat period (s) the worker announced
    last: float = 0.0  # its clock (s) of its last event
    heard: float = 0.0  # receiver's clock (s) of its last event


class CeleryReceiver:
    """Celery task and worker events in, :class:`~jobmetrics.Aggregator` events out.

    Parameters
    ----------
    app:
        The Celery app whose broker carries the events (its configuration also gives task
        routes, the default queue and the event exchange).
    aggregator:
        Where the events go (``record`` is thread-safe, so queries may run meanwhile).
    endpoint_by:
        ``"queue"`` (default): the endpoint is the task's queue (``task-sent``'s ``queue``, else
        its routing key; for a task first seen at ``task-received``, the queue the app's
        ``task_routes`` give its name). ``"task"``: the task's name.
    worker_endpoint:
        Endpoint of the worker events: a name, or a function of the worker's hostname. Default:
        the app's ``task_default_queue`` (``"celery"``).
    unknown_endpoint:
        Endpoint of events of tasks the receiver never saw sent or received (it started while
        they were in flight): Celery's later events carry neither queue nor name.
    heartbeat_expiry:
        A worker silent for this many heartbeat periods (``freq``) leaves the pool (``OFFLINE``
        at its last event + expiry x freq): 2, Celery's own rule, by default.
    retention:
        Seconds the receiver remembers finished tasks, to map their late events to their
        endpoint (default 600). Each task remembered takes about 0.5 KB.
    task_ttl:
        Seconds after which a task in flight with no event is forgotten (default 86400).
    sent_grace:
        With ``endpoint_by="queue"``, a task whose ``task-received`` arrives before its
        ``task-sent`` (an idle worker can beat the client's event) is held up to this many
        seconds (default 1) for the queue ``task-sent`` names; without one it is recorded with
        the queue the app's routes give. Keep it below the aggregator's ``allowed_lateness``;
        0 records at once.

    Examples
    --------
    >>> from celery import Celery
    >>> from jobmetrics import Aggregator
    >>> app = Celery("demo", broker="memory://", set_as_current=False)
    >>> agg = Aggregator(allowed_lateness="0s")
    >>> rx = CeleryReceiver(app, agg)
    >>> rx.handle({"type": "task-sent", "uuid": "t1", "name": "add", "queue": "math", "timestamp": 10.0})
    >>> rx.handle({"type": "task-started", "uuid": "t1", "hostname": "w@h", "timestamp": 10.5})
    >>> rx.handle({"type": "task-succeeded", "uuid": "t1", "hostname": "w@h", "timestamp": 12.0})
    >>> agg.flush()
    >>> m = agg.metrics("math")
    >>> m["requests"], m["completed"], m["delay_time_count"], m["execution_time_count"]
    (1, 1, 1, 1)
    """

    def __init__(
        self,
        app: celery.Celery,
        aggregator: Aggregator,
        *,
        endpoint_by: Literal["queue", "task"] = "queue",
        worker_endpoint: str | Callable[[str], str] | None = None,
        unknown_endpoint: str = "unknown",
        heartbeat_expiry: float = _HEARTBEAT_EXPIRY,
        retention: float = 600.0,
        task_ttl: float = 86400.0,
        sent_grace: float = 1.0,
    ) -> None:
        if not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator must be a jobmetrics.Aggregator, got {type(aggregator).__name__}")
        if endpoint_by not in ("queue", "task"):
            raise ValueError(f"endpoint_by must be 'queue' or 'task', got {endpoint_by!r}")
        if not heartbeat_expiry > 0:
            raise ValueError(f"heartbeat_expiry must be positive, got {heartbeat_expiry!r}")
        if not retention >= 0:
            raise ValueError(f"retention must be >= 0 seconds, got {retention!r}")
        if not task_ttl > 0:
            raise ValueError(f"task_ttl must be positive, got {task_ttl!r}")
        if not sent_grace >= 0:
            raise ValueError(f"sent_grace must be >= 0 seconds, got {sent_grace!r}")
        self.app = app
        self.aggregator = aggregator
        self.endpoint_by = endpoint_by
        self.default_queue: str = str(app.conf.task_default_queue)
        self.worker_endpoint = self.default_queue if worker_endpoint is None else worker_endpoint
        self.unknown_endpoint = unknown_endpoint
        self.heartbeat_expiry = float(heartbeat_expiry)
        self.retention = float(retention)
        self.task_ttl = float(task_ttl)
        self.sent_grace = float(sent_grace)
        self._args = {
            "endpoint_by": endpoint_by, "worker_endpoint": worker_endpoint,
            "unknown_endpoint": unknown_endpoint, "heartbeat_expiry": heartbeat_expiry,
            "retention": retention, "task_ttl": task_ttl, "sent_grace": sent_grace,
        }  # fmt: skip
        self._tasks: dict[str, _Task] = {}
        self._held: dict[str, _Held] = {}
        self._finished: dict[str, _Task] = {}  # in the order they were last touched
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._receiver: Any = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticked = 0.0
        #: Set while the receiver is consuming events (connected to the broker).
        self.ready = threading.Event()
        #: Events seen, by type (``"ignored"`` counts those without a mapping, ``"errors"`` those
        #: the capture loop could not map).
        self.counts: dict[str, int] = {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args.items())
        return f"CeleryReceiver({self.app!r}, {self.aggregator!r}, {args})"

    # ------------------------------------------------------------------ mapping
    def handle(self, event: Mapping[str, Any]) -> None:
        """Map one Celery event (the dict a Celery receiver hands its handlers) into the aggregator.

        Unknown event types are counted in :attr:`counts` under ``"ignored"``.
        """
        kind = str(event.get("type", ""))
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind.startswith("task-"):
                handled = self._task_event(kind, event)
            elif kind.startswith("worker-"):
                handled = self._worker_event(kind, event)
            else:
                handled = False
            if not handled:
                self.counts["ignored"] = self.counts.get("ignored", 0) + 1

    def _handle_logged(self, event: _Event) -> None:
        """:meth:`handle` for the capture loop: an event that cannot be mapped (e.g. a
        ``worker_endpoint`` function that raises) is logged and counted under ``"errors"``, and
        the loop goes on."""
        try:
            self.handle(event)
        except Exception:
            with self._lock:
                self.counts["errors"] = self.counts.get("errors", 0) + 1
            _log.exception("cannot map the Celery event %r", event)

    def _task_event(self, kind: str, event: _Event) -> bool:
        uuid = event.get("uuid")
        if uuid is None or kind not in _TASK_HANDLERS:
            return False
        uuid = str(uuid)
        held = self._held.get(uuid)
        if held is not None:
            if kind == "task-sent":
                self._release(uuid, event)
            else:
                held.later.append(event)
            return True
        task = self._task(uuid)
        if task is None and kind == "task-received" and self.endpoint_by == "queue" and self.sent_grace > 0:
            # task-sent is stamped after the message is published, so an idle worker's
            # task-received may come first: wait a little for the queue that task-sent names
            self._held[uuid] = _Held(event, time.monotonic())
            return True
        self._dispatch(uuid, task, kind, event)
        return True

    def _task(self, uuid: str) -> _Task | None:
        task = self._tasks.get(uuid)
        if task is None:
            task = self._finished.pop(uuid, None)
            if task is not None:
                self._tasks[uuid] = task
        return task

    def _dispatch(self, uuid: str, task: _MaybeTask, kind: str, event: _Event) -> None:
        task = _TASK_HANDLERS[kind](self, uuid, task, _event_ms(event), event)
        if task is not None:
            task.touched = time.monotonic()
            if task.phase in _FINAL:
                self._tasks.pop(uuid, None)
                self._finished.pop(uuid, None)
                self._finished[uuid] = task
            else:
                self._tasks[uuid] = task

    def _release(self, uuid: str, sent: _Event | None) -> None:
        """Record a held task: queued at its ``task-sent`` (endpoint from it) or, without one, at
        its ``task-received``; then the events that came meanwhile."""
        held = self._held.pop(uuid)
        received_ms = _event_ms(held.received)
        retries = _retries(held.received) or 0
        if sent is None:
            task = _Task(self._endpoint(held.received, sent=False), _QUEUED, retries=retries)
            self._job(uuid, task, received_ms, _QUEUED)
        else:
            # the worker's task-received cannot precede the enqueueing that task-sent reports
            task = _Task(self._endpoint(sent, sent=True), _QUEUED, retries=retries)
            self._job(uuid, task, min(_event_ms(sent), received_ms), _QUEUED)
        task.touched = time.monotonic()
        self._tasks[uuid] = task
        for event in held.later:
            self._dispatch(uuid, self._task(uuid), str(event["type"]), event)

    def release_held(self, older_than: float = 0.0, now: float | None = None) -> None:
        """Record the tasks held waiting for their ``task-sent`` (see ``sent_grace``) for at least
        ``older_than`` seconds (all by default); :meth:`tick` and :meth:`stop` call it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for uuid in [u for u, h in self._held.items() if now - h.since >= older_than]:
                self._release(uuid, None)

    def _endpoint(self, event: _Event, *, sent: bool) -> str:
        """The endpoint of a task from its ``task-sent`` or ``task-received`` event."""
        name = event.get("name")
        if self.endpoint_by == "task":
            return str(name) if name else self.unknown_endpoint
        if sent:
            queue = event.get("queue") or event.get("routing_key")
            if queue:
                return str(queue)
        if name:
            with contextlib.suppress(Exception):  # a router that cannot route this name: default queue
                return str(self.app.amqp.router.route({}, str(name))["queue"].name)
        return self.default_queue

    def _job(self, uuid: str, task: _Task, ts: float, state: str, worker: str | None = None) -> None:
        self.aggregator.record(ts=ts, endpoint=task.endpoint, job_id=uuid, state=state, worker_id=worker)
        task.phase = state

    def _queued(self, uuid: str, task: _MaybeTask, ts: float, event: _Event, *, sent: bool) -> _Task:
        """``task-sent`` / ``task-received``: a new task, or a task back in its queue (a retry)."""
        retries = _retries(event)
        if task is None:
            task = _Task(self._endpoint(event, sent=sent), _QUEUED, retries=retries or 0)
            self._job(uuid, task, ts, _QUEUED)
            return task
        if sent and retries is not None and retries <= task.retries:
            # the client's task-sent of an attempt already seen at the worker: it is stamped
            # after the message is published, and may arrive after task-started
            return task
        if task.phase == _STARTED or task.phase in _RETRYABLE:
            # the message of a retry (Task.retry publishes it before task-retried), or a message
            # redelivered after its worker was lost
            self._end_on_worker(uuid, task, ts)
            self._job(uuid, task, ts, _QUEUED)
        elif task.phase != _QUEUED:
            # e.g. a finished task's message delivered again: the aggregator counts it
            self._job(uuid, task, ts, _QUEUED)
        # else already queued (task-received after task-sent): nothing new
        if retries is not None:
            task.retries = max(task.retries, retries)
        return task

    def _on_sent(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _Task:
        return self._queued(uuid, task, ts, event, sent=True)

    def _on_received(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _Task:
        return self._queued(uuid, task, ts, event, sent=False)

    def _on_started(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _Task:
        task = task or _Task(self.unknown_endpoint, "")
        host = _host(event)
        if task.phase != _STARTED and host is not None:
            task.worker = host
            self._worker_task(host, ts, add=uuid)
        self._job(uuid, task, ts, _STARTED, host)
        return task

    def _finish(self, uuid: str, task: _MaybeTask, ts: float, event: _Event, state: str) -> _Task:
        task = task or _Task(self.unknown_endpoint, "")
        self._end_on_worker(uuid, task, ts)
        self._job(uuid, task, ts, state, _host(event))
        return task

    def _on_succeeded(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _Task:
        return self._finish(uuid, task, ts, event, "COMPLETED")

    def _on_failed(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _Task:
        return self._finish(uuid, task, ts, event, "FAILED")

    def _on_revoked(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _Task:
        return self._finish(uuid, task, ts, event, "TIMED_OUT" if event.get("expired") else "CANCELLED")

    def _on_retried(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _MaybeTask:
        if task is not None and task.phase == _QUEUED:
            return task  # the retry's task-sent came first and already put it back in its queue
        task = self._finish(uuid, task, ts, event, _QUEUED)
        task.retries += 1  # the next attempt's
        return task

    def _on_rejected(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _MaybeTask:
        if event.get("requeue"):
            if task is not None and task.phase == _QUEUED:
                return task
            return self._finish(uuid, task, ts, event, _QUEUED)
        if task is not None and task.phase in _FINAL:
            return task  # Reject(requeue=False) sends task-failed first
        return self._finish(uuid, task, ts, event, "FAILED")

    def _on_cancelled(self, uuid: str, task: _MaybeTask, ts: float, event: _Event) -> _MaybeTask:
        # Celery stopped the task (connection lost) and leaves its message to be delivered again
        if task is not None and task.phase == _QUEUED:
            return task
        return self._finish(uuid, task, ts, event, _QUEUED)

    # ------------------------------------------------------------------ workers
    def _worker_endpoint(self, host: str) -> str:
        we = self.worker_endpoint
        return we if isinstance(we, str) else str(we(host))

    def _set_worker(self, host: str, worker: _Worker, ts: float, state: str) -> None:
        worker.state = state
        self.aggregator.record(
            ts=ts, endpoint=self._worker_endpoint(host), kind="worker", worker_id=host, state=state
        )

    def _busy(self, worker: _Worker) -> str:
        return "RUNNING" if worker.active or worker.extra else "IDLE"

    def _worker_task(
        self, host: str, ts: float, *, add: str | None = None, remove: str | None = None
    ) -> None:
        """A task started (``add``) or ended (``remove``) on ``host``: RUNNING/IDLE as it changes."""
        worker = self._workers.get(host)
        if worker is None:
            if add is None:
                return
            worker = self._workers[host] = _Worker()
        if add is not None:
            worker.active.add(add)
        if remove is not None:
            worker.active.discard(remove)
        worker.last = max(worker.last, ts / 1000.0)
        worker.heard = time.monotonic()
        state = self._busy(worker)
        if state != worker.state:
            self._set_worker(host, worker, ts, state)

    def _end_on_worker(self, uuid: str, task: _Task, ts: float) -> None:
        if task.worker is not None and task.phase == _STARTED:
            self._worker_task(task.worker, ts, remove=uuid)
        task.worker = None

    def _worker_event(self, kind: str, event: _Event) -> bool:
        host = _host(event)
        if host is None or kind not in _WORKER_TYPES:
            return False
        ts = _event_ms(event)
        if kind == "worker-offline":
            worker = self._workers.pop(host, None)
            if worker is not None:
                self._set_worker(host, worker, ts, "OFFLINE")
            return True
        worker = self._workers.get(host)
        if worker is None:
            worker = self._workers[host] = _Worker()
        worker.last = ts / 1000.0
        worker.heard = time.monotonic()
        freq = event.get("freq")
        if isinstance(freq, int | float) and freq > 0:
            worker.freq = float(freq)
        if kind == WORKER_INITIALIZING:
            worker.active.clear()
            worker.extra = 0
            self._set_worker(host, worker, ts, "INITIALIZING")
            return True
        active = event.get("active")
        if isinstance(active, int) and active >= 0:
            if active == 0:
                worker.active.clear()
            worker.extra = max(0, active - len(worker.active))
        # online ends a cold start; a heartbeat repeating the state only refreshes "last seen"
        self._set_worker(host, worker, ts, self._busy(worker))
        return True

    def workers(self) -> dict[str, int]:
        """Workers known now, by state (``initializing``, ``idle``, ``running``): the receiver's
        own view, current to the last event (the aggregator's worker gauges are per window)."""
        out = {"initializing": 0, "idle": 0, "running": 0}
        with self._lock:
            for w in self._workers.values():
                if w.state is not None:
                    out[w.state.lower()] += 1
        return out

    def tasks_in_memory(self) -> int:
        """Task ids remembered: in flight, and finished within ``retention``."""
        with self._lock:
            return len(self._tasks) + len(self._finished)

    # ------------------------------------------------------------------ housekeeping
    def tick(self, now: float | None = None) -> None:
        """Housekeeping, run about once a second while capturing: tasks held longer than
        ``sent_grace`` are recorded; workers silent for ``heartbeat_expiry`` x freq go
        ``OFFLINE``; task ids older than ``retention`` (finished) or ``task_ttl`` are forgotten.

        ``now`` is the receiver's ``time.monotonic()`` (default: now).
        """
        now = time.monotonic() if now is None else now
        self.release_held(self.sent_grace, now)
        with self._lock:
            for host, w in list(self._workers.items()):
                window = self.heartbeat_expiry * w.freq
                if now - w.heard > window:
                    del self._workers[host]
                    self._set_worker(host, w, (w.last + window) * 1000.0, "OFFLINE")
            old: list[str] = []
            for uuid, task in self._finished.items():
                if now - task.touched < self.retention:
                    break
                old.append(uuid)
            for uuid in old:
                del self._finished[uuid]
            stale = [u for u, t in self._tasks.items() if now - t.touched >= self.task_ttl]
            for uuid in stale:
                del self._tasks[uuid]

    # ------------------------------------------------------------------ capture
    def _make_receiver(self, connection: Any) -> Any:
        owner = self

        class _Receiver(self.app.events.Receiver):  # type: ignore[name-defined,misc]
            def event_from_message(self, body: Any, localize: bool = True, **kwargs: Any) -> Any:
                # the sender's timestamp as it is: epoch seconds (see the module docstring)
                return super().event_from_message(body, localize=False, **kwargs)

            def on_consume_ready(self, *args: Any, **kwargs: Any) -> None:
                super().on_consume_ready(*args, **kwargs)
                owner.ready.set()

            def consume(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from super().consume(*args, **kwargs)
                finally:  # stopped, or the connection is lost (ConsumerMixin.run reconnects)
                    owner.ready.clear()

            def on_iteration(self) -> None:
                now = time.monotonic()
                if now - owner._ticked >= 1.0:
                    owner._ticked = now
                    owner.tick(now)

        return _Receiver(connection, handlers={"*": self._handle_logged}, app=self.app)

    def capture(self, *, limit: int | None = None, timeout: float | None = None, wakeup: bool = True) -> None:
        """Consume events on one broker connection until :meth:`stop`, ``limit`` events, or
        ``timeout`` seconds without events (then ``socket.timeout``/``TimeoutError`` is raised).

        ``wakeup`` asks the workers for a heartbeat at once, so their states are known early.
        """
        self._stopping.clear()
        with self.app.connection_for_read() as connection:
            self._receiver = self._make_receiver(connection)
            if self._stopping.is_set():
                return
            self._receiver.capture(limit=limit, timeout=timeout, wakeup=wakeup)

    def run(self) -> None:
        """Consume events until :meth:`stop`, reconnecting when the broker cannot be reached or the
        connection drops: kombu's ``ConsumerMixin.run`` while connected, and around it retries
        every 1, 2, 4 … 30 s, each failure logged as a warning."""
        self._stopping.clear()
        delay = _RETRY_FIRST
        while not self._stopping.is_set():
            try:
                with self.app.connection_for_read() as connection:
                    self._receiver = self._make_receiver(connection)
                    if not self._stopping.is_set():
                        self._receiver.run()
                return
            except Exception as exc:  # the broker: unreachable, refused, gone
                if self.ready.is_set():
                    delay = _RETRY_FIRST
                self.ready.clear()
                if self._stopping.is_set():
                    return
                uri = self.app.connection_for_read().as_uri()
                _log.warning("cannot receive Celery events from %s (%s); retrying in %g s", uri, exc, delay)
                self._stopping.wait(delay)
                delay = min(2 * delay, _RETRY_MAX)

    def start(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread and return it."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this receiver is already running")
        self._stopping.clear()
        thread = threading.Thread(target=self.run, name="jobmetrics-celery-receiver", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the capture loop to stop (it checks about once a second), wait for the thread
        :meth:`start` made, at most ``timeout`` seconds, then record the tasks still held."""
        self._stopping.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                self._thread = None
        self.release_held()


def _event_ms(event: _Event) -> float:
    """An event's time in epoch milliseconds: its ``timestamp`` (seconds), else when it arrived."""
    ts = event.get("timestamp")
    if not isinstance(ts, int | float):
        ts = event.get("local_received")
        if not isinstance(ts, int | float):
            ts = time.time()
    return float(ts) * 1000.0


def _retries(event: _Event) -> int | None:
    """The ``retries`` of a task-sent/task-received event (None when absent)."""
    retries = event.get("retries")
    return retries if isinstance(retries, int) and not isinstance(retries, bool) else None


def _host(event: _Event) -> str | None:
    host = event.get("hostname")
    return None if host is None else str(host)


_Handler = Callable[[CeleryReceiver, str, _MaybeTask, float, _Event], _MaybeTask]
_TASK_HANDLERS: dict[str, _Handler] = {
    "task-sent": CeleryReceiver._on_sent,
    "task-received": CeleryReceiver._on_received,
    "task-started": CeleryReceiver._on_started,
    "task-succeeded": CeleryReceiver._on_succeeded,
    "task-failed": CeleryReceiver._on_failed,
    "task-retried": CeleryReceiver._on_retried,
    "task-revoked": CeleryReceiver._on_revoked,
    "task-rejected": CeleryReceiver._on_rejected,
    "task-cancelled": CeleryReceiver._on_cancelled,
}


# ---------------------------------------------------------------------- worker side
def report_worker_startup(app: celery.Celery) -> Callable[..., None]:
    """Make the workers of ``app`` announce their start, so that cold starts can be measured.

    Call it in the module that defines the Celery app (the one workers load). When a worker
    starts with events enabled (``-E`` or ``worker_send_task_events``), it sends a
    ``worker-initializing`` event (:data:`WORKER_INITIALIZING`) at Celery's ``celeryd_init``
    signal; :class:`CeleryReceiver` maps it to ``INITIALIZING``, and the worker's ``worker-online``
    ends the cold start. The cold start so spans the worker's own start-up: pool processes,
    broker connection, consumers — from the moment Python, Celery and the app module are loaded
    (those come before the signal, so they are not included: an event stamped with the earlier
    process start would arrive older than the aggregator's allowed lateness).

    Calling it again for the same app changes nothing. Returns the signal receiver.
    """

    def announce(sender: Any = None, conf: Any = None, options: Any = None, **_: Any) -> None:
        enabled = bool(getattr(conf, "worker_send_task_events", False)) or bool(
            (options or {}).get("task_events")
        )
        if not enabled:
            return
        try:
            with app.events.default_dispatcher(hostname=str(sender)) as dispatcher:
                dispatcher.send(WORKER_INITIALIZING)
        except Exception as exc:  # never stop a worker from starting
            _log.warning("could not send %s for %s: %r", WORKER_INITIALIZING, sender, exc)

    celeryd_init.connect(announce, weak=False, dispatch_uid=f"jobmetrics-worker-startup-{id(app)}")
    return announce
