"""A real HTTP receiver for webhook tests: aiohttp on a loopback port, in a thread.

It verifies Standard Webhooks signatures like a department would, answers with scripted
failures (500s, then recovery; a permanent 422), and keeps each delivery in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    webhook_id: str
    idempotency_key: str
    body: dict[str, Any]


@dataclass
class Receiver:
    secret: str
    answer: Callable[[int, dict[str, Any]], int] = lambda n, body: 200  # noqa: E731 - (request number, body) → status
    requests: int = 0
    bad_signatures: int = 0
    delivered: list[Delivery] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests += 1
        try:
            Webhook(self.secret).verify(raw, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401)
        body = json.loads(raw)
        status = self.answer(self.requests, body)
        if status == 200 and request.headers["webhook-id"] not in {d.webhook_id for d in self.delivered}:
            self.delivered.append(Delivery(request.headers["webhook-id"], request.headers["Idempotency-Key"], body))
        return web.Response(status=status)

    def __enter__(self) -> Receiver:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/inbox", self.handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/inbox"
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
