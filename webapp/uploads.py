"""Upload budgets: Gradio limits each uploaded file (`max_file_size`, HTTP 413) but not how much one
client, or everyone together, may upload. `UploadBudget` counts the uploads and bytes of each client
and of all clients within a sliding window; `UploadLimit` is the ASGI middleware that charges every
`POST .../gradio_api/upload` to it before the body is read, and answers HTTP 429 with what was exceeded
and when to try again when a request would pass a budget. Bytes are the request's `Content-Length`
(a request without one is charged the largest file allowed).
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

# The sliding window of the budgets, in seconds.
UPLOAD_WINDOW_S = 600.0
MB = 1024 * 1024


@dataclass
class UploadLimits:
    """Budgets per `window_s` seconds: uploads and MB per client, MB of all clients together."""

    client_uploads: int = 30
    client_mb: float = 200.0
    total_mb: float = 1000.0
    window_s: float = UPLOAD_WINDOW_S


class UploadBudget:
    """Uploads charged per client within a sliding window (thread-safe).

    Args:
        limits: the budgets.
        clock: seconds, monotonic (a stand-in in tests).
    """

    def __init__(self, limits: UploadLimits, clock=time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._uploads: deque[tuple[float, str, int]] = deque()  # (when, client, bytes), oldest first
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self._uploads and self._uploads[0][0] <= now - self.limits.window_s:
            self._uploads.popleft()

    def charge(self, client: str, size: int) -> str | None:
        """Charge an upload of `size` bytes to `client`; None when it fits, else the refusal (nothing
        is charged then)."""
        limits = self.limits
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            mine = [(when, bytes_) for when, who, bytes_ in self._uploads if who == client]
            everyone = sum(bytes_ for *_, bytes_ in self._uploads)
            if len(mine) + 1 > limits.client_uploads:
                refusal, oldest = f"at most {limits.client_uploads} uploads per client", mine[0][0]
            elif sum(bytes_ for _, bytes_ in mine) + size > limits.client_mb * MB:
                refusal, oldest = f"at most {limits.client_mb:g} MB of uploads per client", (mine or [(now, 0)])[0][0]
            elif everyone + size > limits.total_mb * MB:
                refusal = f"at most {limits.total_mb:g} MB of uploads from everyone together"
                oldest = self._uploads[0][0] if self._uploads else now
            else:
                self._uploads.append((now, client, size))
                return None
        wait = max(1, math.ceil(oldest + limits.window_s - now))
        return (f"Upload refused: this server takes {refusal} in {limits.window_s / 60:g} minutes. "
                f"Try again in {wait} s.")


class UploadLimit:
    """ASGI middleware: charges each upload request to `budget`, refusing with HTTP 429 and the reason.

    Args:
        budget: the budgets.
        largest_bytes: charged for a request that gives no `Content-Length`.
    """

    def __init__(self, app, budget: UploadBudget, largest_bytes: int) -> None:
        self.app = app
        self.budget = budget
        self.largest_bytes = largest_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "POST" and \
                scope.get("path", "").rstrip("/").endswith("/gradio_api/upload"):
            headers = dict(scope.get("headers") or [])
            try:
                size = int(headers.get(b"content-length", b""))
            except ValueError:
                size = self.largest_bytes
            client = (scope.get("client") or ("",))[0]
            refusal = self.budget.charge(str(client), max(0, size))
            if refusal is not None:
                body = json.dumps({"detail": refusal}).encode()
                await send({"type": "http.response.start", "status": 429,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def upload_middleware(limits: UploadLimits, largest_bytes: int):
    """`UploadLimit` with a fresh budget, as Starlette's `Middleware` for the app's constructor."""
    from starlette.middleware import Middleware

    return Middleware(UploadLimit, budget=UploadBudget(limits), largest_bytes=largest_bytes)
