"""``jobmetrics celery``: aggregate a Celery cluster's events live and serve Prometheus metrics and
a JSON ``/health`` until interrupted; optionally write snapshots to Parquet every N minutes.

The receiver (:class:`jobmetrics.integrations.celery.CeleryReceiver`) runs in a thread; the HTTP
server in another; the main thread moves the watermark once a second (so windows close while the
cluster is quiet), writes the snapshots, and waits for SIGINT or SIGTERM to shut down cleanly:
stop serving, stop receiving, apply every event held, write the last snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import click
import pyarrow as pa
import pyarrow.compute as pc

from ..aggregator import Aggregator
from ..timeparse import parse_duration
from ._params import duration_us

__all__ = ["SnapshotWriter", "command", "load_app", "make_app"]

#: Default port of the HTTP server.
DEFAULT_PORT = 9890

_StartResponse = Callable[..., Any]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


def make_app(aggregator: Aggregator, receiver: Any, **collector: Any) -> Callable[..., Iterable[bytes]]:
    """The WSGI app of the server: ``/metrics`` (and ``/``) the Prometheus exposition of
    ``aggregator``; ``/health`` its :func:`jobmetrics.health.health` summary (``?endpoint=NAME``
    for one endpoint) plus a ``celery`` section: the receiver's current workers by state and the
    Celery events seen by type."""
    import prometheus_client

    from ..health import health
    from ..prometheus import make_registry

    metrics_app = prometheus_client.make_wsgi_app(make_registry(aggregator, **collector))

    def app(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/", "/metrics"):
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result
        if path != "/health":
            return _json(start_response, "404 Not Found", {"error": f"no such path {path!r}"})
        query = parse_qs(environ.get("QUERY_STRING", ""))
        endpoint = query.get("endpoint", [None])[0]
        try:
            body = health(aggregator, endpoint)
        except KeyError as exc:
            return _json(start_response, "404 Not Found", {"error": str(exc.args[0])})
        counts = dict(receiver.counts)
        body["celery"] = {
            "connected": receiver.ready.is_set(),
            "workersNow": receiver.workers(),
            "events": counts,
        }
        return _json(start_response, "200 OK", body)

    return app


def _json(start_response: _StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class SnapshotWriter:
    """Writes the aggregator's windows to Parquet files in ``folder``, each window row once.

    Every :meth:`write` takes the rows that became final (closed by the watermark) since the last
    one; ``last=True`` (at shutdown, after ``flush``) also takes the rows still open. The files
    (``celery-<UTC time>.parquet``) therefore partition the windows: read them together, or
    :func:`jobmetrics.rollup` them, for exact totals.
    """

    def __init__(self, aggregator: Aggregator, folder: str | Path) -> None:
        self.aggregator = aggregator
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._done_until: int | None = None  # window_start (µs) from which rows are not written yet
        self.files: list[Path] = []

    def write(self, *, last: bool = False) -> Path | None:
        """Write the new rows; returns the file, or None when there was nothing new."""
        from ..io.parquet import write_parquet

        table = self.aggregator.snapshot()
        if not len(table):
            return None
        rows = table if last else table.filter(table.column("final"))
        if self._done_until is not None:
            start = pc.cast(rows.column("window_start"), pa.int64())
            rows = rows.filter(pc.greater_equal(start, self._done_until))
        if not len(rows):
            return None
        self._done_until = int(pc.max(pc.cast(rows.column("window_start"), pa.int64())).as_py()) + 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"celery-{stamp}.parquet"
        write_parquet(rows, path)
        self.files.append(path)
        return path


def load_app(name: str | None, broker: str | None) -> Any:
    """The Celery app the command listens with: the app ``name`` (``module`` or ``module:attr``,
    found as ``celery -A`` finds it) or a new one, with ``broker`` as its broker when given."""
    from celery import Celery
    from celery.app.utils import find_app

    if name is None:
        if broker is None:
            raise click.UsageError("give the broker URL (--broker or CELERY_BROKER_URL) or an app (--app)")
        return Celery("jobmetrics", broker=broker, set_as_current=False)
    try:
        app = find_app(name)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load the Celery app {name!r}: {exc}", param_hint="--app") from None
    if not isinstance(app, Celery):
        raise click.BadParameter(f"{name!r} is not a Celery app but {type(app).__name__}", param_hint="--app")
    if broker is not None:
        app.conf.update(broker_url=broker, broker_read_url=broker, broker_write_url=broker)
    return app


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> str:
    us = duration_us(value, param.name or "duration")
    if param.name == "allowed_lateness" and us < 2_000_000:
        # events recorded by the receiver's housekeeping (silent workers, tasks held for their
        # task-sent) come up to about a second after their time
        raise click.BadParameter(f"must be at least 2s, got {value!r}")
    return value


@click.command(name="celery")
@click.option(
    "--broker", envvar="CELERY_BROKER_URL", metavar="URL",
    help="Broker URL of the Celery cluster, e.g. redis://localhost:6379/0 (env CELERY_BROKER_URL); "
    "needed unless --app gives it.",
)  # fmt: skip
@click.option(
    "-A", "--app", "app_name", metavar="MODULE[:NAME]",
    help="Use this Celery app's configuration (broker, transport options, task routes, default "
    "queue), as `celery -A` finds it.",
)  # fmt: skip
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
    help="HTTP port of /metrics and /health (0: any free port).",
)  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--endpoint-by", type=click.Choice(["queue", "task"]), default="queue", show_default=True,
    help="Endpoint of a task: its queue, or its name.",
)  # fmt: skip
@click.option(
    "--worker-endpoint", default=None, metavar="NAME",
    help="Endpoint of the worker events (default: the app's default queue; 'celery' without --app).",
)  # fmt: skip
@click.option("--window", default="60s", show_default=True, callback=_duration, help="Window width.")
@click.option(
    "--allowed-lateness", default="5s", show_default=True, callback=_duration,
    help="How far out of order events may arrive (clock differences between machines included); "
    "at least 2s.",
)  # fmt: skip
@click.option(
    "--history", default="24h", show_default=True, callback=_duration,
    help="How long closed windows stay in memory.",
)  # fmt: skip
@click.option(
    "--snapshot-dir", type=click.Path(file_okay=False), default=None,
    help="Write the windows to Parquet files in this folder (each window once; the rest at exit).",
)  # fmt: skip
@click.option(
    "--snapshot-every", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MINUTES",
    help="Minutes between snapshot files (needs --snapshot-dir; default 5).",
)  # fmt: skip
def command(
    broker: str | None,
    app_name: str | None,
    port: int,
    host: str,
    endpoint_by: str,
    worker_endpoint: str | None,
    window: str,
    allowed_lateness: str,
    history: str,
    snapshot_dir: str | None,
    snapshot_every: float | None,
) -> None:
    """Aggregate a Celery cluster's events live; serve Prometheus /metrics and a JSON /health.

    Workers and clients must send events: start workers with -E (or worker_send_task_events) and
    set task_send_sent_event on the clients for queue times. Runs until SIGINT or SIGTERM.
    """
    try:
        from ..integrations.celery import CeleryReceiver
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    if snapshot_every is not None and snapshot_dir is None:
        raise click.UsageError("--snapshot-every needs --snapshot-dir")
    # broker trouble (the receiver's and kombu's warnings) goes to stderr with a time
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    every_s = 60.0 * (snapshot_every if snapshot_every is not None else 5.0)

    aggregator = Aggregator(window=window, allowed_lateness=allowed_lateness, history=history)
    app = load_app(app_name, broker)
    # a task held for its task-sent is recorded up to sent_grace (+ the 1 s housekeeping period)
    # after its time: keep that well within the lateness
    lateness_s = parse_duration(allowed_lateness, name="allowed_lateness") / 1e6
    receiver = CeleryReceiver(
        app,
        aggregator,
        endpoint_by="task" if endpoint_by == "task" else "queue",
        worker_endpoint=worker_endpoint,
        sent_grace=min(1.0, lateness_s / 4),
    )
    writer = SnapshotWriter(aggregator, snapshot_dir) if snapshot_dir is not None else None
    try:
        server = make_server(
            host,
            port,
            make_app(aggregator, receiver),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    serving = threading.Thread(target=server.serve_forever, name="jobmetrics-http", daemon=True)
    serving.start()
    receiver.start()
    url = f"http://{host}:{server.server_port}"
    safe_broker = app.connection_for_read().as_uri()  # password masked
    click.echo(
        f"jobmetrics celery: events from {safe_broker}; serving {url}/metrics and {url}/health", err=True
    )
    sys.stderr.flush()
    next_snapshot = time.monotonic() + every_s
    try:
        while not stop.wait(1.0):
            aggregator.advance()
            if writer is not None and time.monotonic() >= next_snapshot:
                next_snapshot += every_s
                writer.write()
    finally:
        server.shutdown()
        server.server_close()
        receiver.stop()
        aggregator.flush()
        if writer is not None:
            writer.write(last=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
    events = sum(v for k, v in receiver.counts.items() if k not in ("ignored", "errors"))
    files = f"; {len(writer.files)} snapshot file(s) in {writer.folder}" if writer is not None else ""
    click.echo(f"jobmetrics celery: stopped after {events} events{files}", err=True)
