"""A generation request as a job: stopped when its Gradio event is cancelled (the Stop button, a
`gradio_client` `job.cancel()`, a closed browser tab), and run in one of a fixed number of worker
slots shared by every tab.

Gradio cancels a running event by cancelling its asyncio task, but a synchronous handler keeps
running in its worker thread, and Gradio frees the queue slot at once: cancelled work would run to
the end, stack up behind new requests and write its files. So each job asks, at every denoising step
(the pipelines' `progress_callback`), whether its event is still alive, and raises
`GenerationCancelled` when it is not: the model is released and no output file is written.

A REST call (`POST /gradio_api/call/<endpoint>`) whose caller never opens the result stream
(`GET /gradio_api/call/<endpoint>/<event_id>`) counts as cancelled `RESULT_STREAMS.abandon_after_s`
seconds after it was queued: it stops at its next step, or is refused when its turn comes.
"""
from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import gradio as gr

from studio.progress import GenerationCancelled, never_cancelled

Function = TypeVar("Function", bound=Callable)
# Seconds between cancellation checks while a job waits for a worker slot.
POLL_S = 0.25
# Seconds a REST call may wait for its caller to open the result stream (default of --abandoned-call-s).
ABANDONED_AFTER_S = 20.0
# The result stream of a REST call: GET /gradio_api/call[/v2]/<endpoint>/<event_id>.
STREAM_PATH = re.compile(r"/call/(?:v2/)?[^/]+/([0-9a-fA-F]{8,64})/?$")


class ResultStreams:
    """Which REST calls' result streams were opened, so a call nobody reads is cancelled (Gradio runs a
    `POST /gradio_api/call/<endpoint>` to the end whether or not its stream is ever read).

    `middleware()` goes into the app (`demo.launch(app_kwargs={"middleware": [...]})`): it notes the
    event id of every result stream opened. Until it is in a running app nothing counts as abandoned.

    Args:
        abandon_after_s: seconds after queueing that a call whose stream is still unopened is cancelled.
        remembered: event ids kept (the oldest forgotten first).
    """

    def __init__(self, abandon_after_s: float = ABANDONED_AFTER_S, remembered: int = 100_000) -> None:
        self.abandon_after_s = abandon_after_s
        self.remembered = remembered
        self.installed = False
        self._opened: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def middleware(self):
        """The ASGI middleware for the app's constructor (Starlette's `Middleware`)."""
        from starlette.middleware import Middleware

        return Middleware(_StreamWatch, streams=self)

    def opened(self, event_id: str) -> None:
        with self._lock:
            self._opened[event_id] = None
            while len(self._opened) > self.remembered:
                self._opened.popitem(last=False)

    def was_opened(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._opened

    def abandoned(self, event: object) -> bool:
        """Whether `event` (a Gradio queue event) is a REST call whose stream is unopened too long."""
        if not self.installed or not getattr(getattr(event, "data", None), "simple_format", False):
            return False
        waited = time.monotonic() - getattr(event, "enqueue_time", time.monotonic())
        return waited > self.abandon_after_s and not self.was_opened(getattr(event, "_id", ""))


class _StreamWatch:
    """ASGI middleware: tells `ResultStreams` the event id of every REST result stream opened."""

    def __init__(self, app, streams: ResultStreams) -> None:
        self.app = app
        self.streams = streams
        streams.installed = True

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "GET":
            match = STREAM_PATH.search(scope.get("path", ""))
            if match:
                self.streams.opened(match.group(1))
        await self.app(scope, receive, send)


# Requests one client may have waiting or running in the queue at once (default of --client-queue).
CLIENT_QUEUE = 16
# A request that joins the queue: the page's and gradio_client's, or a REST call.
JOIN_PATH = re.compile(r"/gradio_api/(?:queue/join|call/(?:v2/)?[^/]+)/?$")


class QueueShare:
    """ASGI middleware: a client (address) with `per_client` requests already waiting or running in the
    app's queue gets HTTP 429 for the next one, so one client cannot fill the queue for everyone.

    Args:
        per_client: requests one client may have in the queue at once.
    """

    def __init__(self, app, per_client: int = CLIENT_QUEUE) -> None:
        self.app = app
        self.per_client = per_client

    def waiting(self, scope, client: str) -> int:
        """Requests of `client` in the queue of the app serving `scope` (0 before the queue exists)."""
        try:
            events = scope["app"].get_blocks()._queue.event_ids_to_events
        except (KeyError, AttributeError):
            return 0
        return sum(getattr(getattr(getattr(event, "request", None), "client", None), "host", None) == client
                   for event in list(events.values()))

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "POST" and JOIN_PATH.search(scope.get("path", "")):
            client = (scope.get("client") or ("",))[0]
            if self.waiting(scope, client) >= self.per_client:
                body = json.dumps({"detail": f"Too many requests from this client: at most {self.per_client} "
                                             "may wait or run at once; wait for one to finish."}).encode()
                await send({"type": "http.response.start", "status": 429,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def queue_share_middleware(per_client: int):
    """`QueueShare` as Starlette's `Middleware` for the app's constructor."""
    from starlette.middleware import Middleware

    return Middleware(QueueShare, per_client=per_client)


# The one record of opened streams (event ids are unique across the apps of one process).
RESULT_STREAMS = ResultStreams()


def event_cancelled_check() -> Callable[[], bool]:
    """A check, for the worker thread running the current Gradio event, that says whether the event was
    cancelled or its client went away; outside a queued Gradio event (tests, scripts) it is never true.

    Gradio keeps a running event in its queue's `event_ids_to_events` until the run ends, and drops it
    there when `/cancel` cancels the run; a client that disconnects marks it not `alive`; a REST call
    whose result stream is not opened in time is abandoned (`RESULT_STREAMS`). Gradio offers no public
    call for this (checked on gradio 6.x; `tests/test_app_cancel.py` catches a change).
    """
    from gradio.context import LocalContext

    blocks = LocalContext.blocks.get(None)
    event_id = LocalContext.event_id.get(None)
    events = getattr(getattr(blocks, "_queue", None), "event_ids_to_events", None)
    if not event_id or not isinstance(events, dict):
        return never_cancelled
    if event_id not in events:  # the event is not a queued run (e.g. a direct call)
        return never_cancelled

    def cancelled() -> bool:
        event = events.get(event_id)
        return event is None or not getattr(event, "alive", True) or RESULT_STREAMS.abandoned(event)

    return cancelled


def default_torch_threads(cores: int | None = None) -> int:
    """Torch CPU threads per process: 1 on machines with up to 4 cores, where one thread measured
    fastest for a request on a busy machine (`benchmarks/bench_threads.py`, results in
    `benchmarks/results/threads*.json`), else a quarter of the cores (not measured here: the app
    runs several jobs at once, and they share one pool)."""
    cores = cores or os.cpu_count() or 1
    return 1 if cores <= 4 else max(1, cores // 4)


def default_parallel_jobs(threads: int, device: str = "auto", cores: int | None = None) -> int:
    """Generations at once across tabs. On a GPU 2 (a second job fills the GPU while the first runs
    its CPU parts). On CPU one per `threads` share of the cores, 1 to 4: on the 2-core test machine
    two one-thread jobs at once took as long as the same two one after the other
    (`benchmarks/results/threads.json`), so a short Loops job need not wait for a long text job."""
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return 2
    cores = cores or os.cpu_count() or 1
    return min(4, max(1, cores // max(1, threads)))


# Memory one Gradio session keeps (its copy of the page's config): about 0.41 MB, measured in issue 24.
SESSION_MB = 0.5
# Share of the machine's memory all sessions together may hold.
SESSIONS_SHARE = 0.05


def default_max_sessions(memory_bytes: int | None = None) -> int:
    """Sessions whose state Gradio keeps (the oldest are dropped beyond it): `SESSIONS_SHARE` of the
    machine's memory at `SESSION_MB` each, 200 to Gradio's default 10,000 (e.g. 2,457 on 24 GiB, so
    sessions hold at most about 1.2 GB there rather than 4 GB)."""
    if memory_bytes is None:
        try:
            memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
            memory_bytes = 8 * 1024**3
    return int(min(10_000, max(200, memory_bytes * SESSIONS_SHARE / (SESSION_MB * 1024**2))))


class WorkerSlots:
    """At most `count` generations at once across all tabs (each tab has its own queue, so a long
    text job does not block the Loops tab, but together they must not oversubscribe the machine).

    Args:
        count: generations allowed to run at the same time.
    """

    def __init__(self, count: int) -> None:
        self.count = max(1, int(count))
        self._semaphore = threading.BoundedSemaphore(self.count)

    def acquire(self, cancelled: Callable[[], bool], on_wait: Callable[[], None] | None = None) -> None:
        """Wait for a free slot; raises `GenerationCancelled` if the request is cancelled meanwhile."""
        if self._semaphore.acquire(blocking=False):
            return
        if on_wait is not None:
            on_wait()
        while not self._semaphore.acquire(timeout=POLL_S):
            if cancelled():
                raise GenerationCancelled

    def release(self) -> None:
        self._semaphore.release()


def as_job(slots: WorkerSlots | None = None) -> Callable[[Function], Function]:
    """Decorator for a Gradio generation handler: runs it in a worker slot, and turns a cancellation
    into a quiet `gr.Error` (the browser has stopped listening by then; API callers see "cancelled")."""

    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def run(*args, **kwargs):
            cancelled = event_cancelled_check()
            try:
                if cancelled():  # e.g. a REST call abandoned while it waited in the queue: never started
                    raise GenerationCancelled
                if slots is not None:
                    progress = next((value for value in (*args, *kwargs.values()) if isinstance(value, gr.Progress)),
                                    None)
                    slots.acquire(cancelled, on_wait=None if progress is None else functools.partial(
                        progress, 0.0, desc="Waiting for a free worker (another tab is generating)..."))
                try:
                    return function(*args, **kwargs)
                finally:
                    if slots is not None:
                        slots.release()
            except GenerationCancelled:
                raise gr.Error("Stopped: nothing was saved.", print_exception=False) from None

        return run  # type: ignore[return-value]

    return decorate
