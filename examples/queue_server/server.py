"""A small asyncio job-queue server that records every job, worker and webhook event in jobmetrics.

Routes:

* ``POST /run`` ``{"input": {...}, "webhook": url | true}`` → ``{"id", "status"}``: queue a job.
* ``GET /status/{id}`` → the job's status, attempts, output or error.
* ``POST /cancel/{id}`` → cancel a job waiting in the queue or running.
* ``GET /health`` → job and worker counts, answered from the Aggregator (``jobmetrics.health``).
* ``GET /metrics`` → Prometheus exposition of the Aggregator (``jobmetrics.prometheus``).
* ``POST /webhook-sink`` → a local webhook receiver; answers ``?status=`` (default 200).

Workers are asyncio tasks started on demand (a cold start of ``--cold-start`` seconds, recorded as
``INITIALIZING`` → ``IDLE``) up to ``--workers``; an idle worker leaves after ``--idle-timeout``
(``OFFLINE``). A job's input drives the simulation: ``work`` (seconds of work, default 0.1),
``fail_attempts`` (its first n attempts fail), and any job fails with probability ``--fail-rate``.
A failed attempt is retried up to ``--max-retries`` times; an attempt longer than
``--execution-timeout`` is ``TIMED_OUT``, as is a job that waited longer than ``--queue-ttl``.
When a job ends (completed or finally failed) its webhook is called, up to 3 attempts.

Run ``python examples/queue_server/server.py --port 8080`` (see README.md beside this file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobmetrics import Aggregator
from jobmetrics.health import health
from jobmetrics.prometheus import AggregatorCollector

WEBHOOK_ATTEMPTS = 3
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


class AttemptError(Exception):
    """The simulated handler failed this attempt."""


@dataclass
class Job:
    id: str
    input: dict[str, Any]
    webhook: str | None
    status: str = "IN_QUEUE"
    attempts: int = 0
    queued_at: float = field(default_factory=time.monotonic)
    output: Any = None
    error: str | None = None
    worker_id: str | None = None  # the worker of the current or last attempt
    task: asyncio.Future[Any] | None = None  # the attempt running now

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status, "attempts": self.attempts}
        if self.output is not None:
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Settings:
    endpoint: str = "demo"
    workers: int = 2
    cold_start: float = 0.5
    idle_timeout: float = 30.0
    fail_rate: float = 0.0
    max_retries: int = 2
    execution_timeout: float = 30.0
    queue_ttl: float = 300.0
    seed: int = 0


class QueueServer:
    """The queue, its workers and the Aggregator that records what they do."""

    def __init__(self, agg: Aggregator, settings: Settings) -> None:
        self.agg = agg
        self.s = settings
        self.jobs: dict[str, Job] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.rng = random.Random(settings.seed)
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.idle = 0
        self.worker_ids = itertools.count(1)
        self.http: ClientSession | None = None
        self.base_url = ""  # set once the server listens (for the local webhook sink)
        self.background: set[asyncio.Future[Any]] = set()
        self.stopping = False

    # ------------------------------------------------------------------ recording
    def job_event(self, job: Job, state: str, worker_id: str | None = None) -> None:
        job.status = state
        self.agg.record(endpoint=self.s.endpoint, job_id=job.id, state=state, worker_id=worker_id)

    def worker_event(self, worker_id: str, state: str) -> None:
        self.agg.record(endpoint=self.s.endpoint, kind="worker", worker_id=worker_id, state=state)

    # ------------------------------------------------------------------ jobs
    def submit(self, payload: dict[str, Any]) -> Job:
        webhook = payload.get("webhook")
        if webhook is True:
            webhook = f"{self.base_url}/webhook-sink"
        job = Job(uuid.uuid4().hex, dict(payload.get("input") or {}), webhook or None)
        self.jobs[job.id] = job
        self.job_event(job, "IN_QUEUE")
        self.queue.put_nowait(job.id)
        self.scale()
        return job

    def cancel(self, job: Job) -> bool:
        if job.status == "IN_QUEUE":
            self.job_event(job, "CANCELLED")  # the worker that takes it skips it
            return True
        if job.status == "IN_PROGRESS" and job.task is not None:
            self.job_event(job, "CANCELLED", job.worker_id)
            job.task.cancel()  # stops the attempt; its worker goes back to the queue
            return True
        return False

    async def handler(self, job: Job) -> dict[str, Any]:
        """The simulated work of one attempt."""
        await asyncio.sleep(float(job.input.get("work", 0.1)))
        if job.attempts <= int(job.input.get("fail_attempts", 0)) or self.rng.random() < self.s.fail_rate:
            raise AttemptError(f"attempt {job.attempts} failed")
        return {"echo": job.input, "attempt": job.attempts}

    async def run_attempt(self, job: Job, worker_id: str) -> None:
        job.attempts += 1
        job.worker_id = worker_id
        self.job_event(job, "IN_PROGRESS", worker_id)
        attempt = asyncio.ensure_future(asyncio.wait_for(self.handler(job), self.s.execution_timeout))
        job.task = attempt
        try:
            job.output = await attempt
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise  # the server is stopping
            return  # cancelled through /cancel, which recorded it
        except TimeoutError:
            job.error = f"execution took longer than {self.s.execution_timeout}s"
            self.job_event(job, "TIMED_OUT", worker_id)
            return
        except AttemptError as exc:
            job.error = str(exc)
            self.job_event(job, "FAILED", worker_id)
            if job.attempts <= self.s.max_retries:
                self.job_event(job, "IN_QUEUE")  # a retry
                job.queued_at = time.monotonic()
                self.queue.put_nowait(job.id)
                self.scale()
                return
            self.spawn(self.deliver_webhook(job))
            return
        finally:
            job.task = None
        job.error = None
        self.job_event(job, "COMPLETED", worker_id)
        self.spawn(self.deliver_webhook(job))

    async def deliver_webhook(self, job: Job) -> None:
        if job.webhook is None or self.http is None:
            return
        body = job.view()
        for attempt in range(WEBHOOK_ATTEMPTS):
            try:
                async with self.http.post(job.webhook, json=body) as response:
                    code = response.status
            except (ClientError, TimeoutError):
                code = 0  # no response
            self.agg.record(endpoint=self.s.endpoint, kind="webhook", job_id=job.id, status_code=code)
            if 200 <= code < 300:
                return
            await asyncio.sleep(0.05 * 2**attempt)

    # ------------------------------------------------------------------ workers
    def scale(self) -> None:
        """Start a worker when jobs wait and no worker is idle (up to the maximum)."""
        if self.idle == 0 and len(self.workers) < self.s.workers:
            worker_id = f"worker-{next(self.worker_ids)}"
            self.workers[worker_id] = asyncio.create_task(self.worker(worker_id))

    async def worker(self, worker_id: str) -> None:
        self.worker_event(worker_id, "INITIALIZING")
        try:
            await asyncio.sleep(self.s.cold_start)  # container start, model load …
            self.worker_event(worker_id, "IDLE")
            while True:
                self.idle += 1
                try:
                    job_id = await asyncio.wait_for(self.queue.get(), self.s.idle_timeout)
                except TimeoutError:
                    return  # scaled down
                finally:
                    self.idle -= 1
                job = self.jobs[job_id]
                if job.status != "IN_QUEUE":
                    continue  # cancelled while it waited
                if time.monotonic() - job.queued_at > self.s.queue_ttl:
                    job.error = f"waited longer than {self.s.queue_ttl}s in the queue"
                    self.job_event(job, "TIMED_OUT")
                    continue
                self.worker_event(worker_id, "RUNNING")
                await self.run_attempt(job, worker_id)
                self.worker_event(worker_id, "IDLE")
        finally:
            self.worker_event(worker_id, "OFFLINE")
            self.workers.pop(worker_id, None)
            if not self.stopping and not self.queue.empty():
                self.scale()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def stop(self) -> None:
        """Cancel the jobs still waiting or running, and stop the workers."""
        self.stopping = True
        for job in self.jobs.values():
            if job.status in ("IN_QUEUE", "IN_PROGRESS"):
                self.job_event(job, "CANCELLED")
        tasks = [*self.workers.values(), *self.background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------- HTTP
def make_app(server: QueueServer, registry: CollectorRegistry) -> web.Application:
    routes = web.RouteTableDef()

    def job_or_404(request: web.Request) -> Job:
        job = server.jobs.get(request.match_info["id"])
        if job is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"unknown job {request.match_info['id']!r}"}),
                content_type="application/json",
            )
        return job

    @routes.post("/run")
    async def run(request: web.Request) -> web.Response:
        try:
            payload = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError as exc:
            return web.json_response({"error": f"body is not JSON: {exc}"}, status=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("input", {}), dict):
            return web.json_response({"error": 'expected {"input": {...}}'}, status=400)
        job = server.submit(payload)
        return web.json_response({"id": job.id, "status": job.status})

    @routes.get("/status/{id}")
    async def status(request: web.Request) -> web.Response:
        return web.json_response(job_or_404(request).view())

    @routes.post("/cancel/{id}")
    async def cancel(request: web.Request) -> web.Response:
        job = job_or_404(request)
        if not server.cancel(job):
            return web.json_response({**job.view(), "error": "job already finished"}, status=409)
        await asyncio.sleep(0)  # let a running attempt see its cancellation
        return web.json_response(job.view())

    @routes.get("/health")
    async def health_route(request: web.Request) -> web.Response:
        # a query takes a few microseconds to milliseconds: run it off the event loop anyway
        summary = await asyncio.to_thread(health, server.agg, server.s.endpoint, last=None)
        summary["server"] = {"workers": len(server.workers), "queued": server.queue.qsize()}
        return web.json_response(summary)

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @routes.post("/webhook-sink")
    async def webhook_sink(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"received": True}, status=int(request.query.get("status", "200")))

    app = web.Application()
    app.add_routes(routes)
    return app


async def serve(args: argparse.Namespace) -> None:
    settings = Settings(
        endpoint=args.endpoint, workers=args.workers, cold_start=args.cold_start,
        idle_timeout=args.idle_timeout, fail_rate=args.fail_rate, max_retries=args.max_retries,
        execution_timeout=args.execution_timeout, queue_ttl=args.queue_ttl, seed=args.seed,
    )  # fmt: skip
    state = Path(args.state) if args.state else None
    if state is not None and state.exists():
        agg = Aggregator.restore(state)
        print(f"restored metrics state from {state}", flush=True)
    else:
        agg = Aggregator(window=args.window, allowed_lateness=args.lateness, history=args.history)
    # windows close on time even when the queue is quiet (a tick reads the wall clock before it
    # takes the aggregator, so events recorded while it runs are never behind its watermark)
    agg.start_ticker(args.tick)
    server = QueueServer(agg, settings)
    registry = CollectorRegistry()
    registry.register(AggregatorCollector(agg, last=args.last))
    runner = web.AppRunner(make_app(server, registry), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    server.base_url = f"http://{args.host}:{port}"
    server.http = ClientSession(timeout=ClientTimeout(total=5))
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"queue server listening on {server.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await runner.cleanup()
        await server.http.close()
        agg.close()  # stops the ticker
        if state is not None:
            agg.save(state)
            print(f"saved metrics state to {state}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed)")
    p.add_argument("--endpoint", default="demo", help="endpoint name in the metrics")
    p.add_argument("--workers", type=int, default=2, help="most workers at once")
    p.add_argument("--cold-start", type=float, default=0.5, help="seconds")
    p.add_argument("--idle-timeout", type=float, default=30.0, help="seconds before an idle worker leaves")
    p.add_argument("--fail-rate", type=float, default=0.05, help="probability that an attempt fails")
    p.add_argument("--max-retries", type=int, default=2)
    p.add_argument("--execution-timeout", type=float, default=30.0, help="seconds")
    p.add_argument("--queue-ttl", type=float, default=300.0, help="seconds a job may wait in the queue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", default="60s", help="metrics window")
    p.add_argument("--lateness", default="1s", help="allowed lateness of events")
    p.add_argument(
        "--history", default=None, help="how long closed windows stay in memory (default: all; see README)"
    )
    p.add_argument("--last", default="5m", help="sliding window of the quantile summaries")
    p.add_argument("--tick", default="1s", help="how often the watermark follows the clock")
    p.add_argument("--state", default=None, help="file to restore metrics from and save them to")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
