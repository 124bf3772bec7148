"""Small real HTTP servers for the hostile tests: aiohttp on loopback ports, each in its own thread.

Why real servers: the attacks are about what a client does on the wire (following a redirect to another
origin, reading an endless body), which a mock transport would decide for us.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """Serves ``handler`` for every method and path; ``seen`` keeps (method, path, headers, body) of each request."""

    handler: Handler | None = None
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path, dict(request.headers), body))
        if self.handler is None:
            return web.Response(status=200)
        return await self.handler(request)

    def __enter__(self) -> Server:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
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
        with contextlib.suppress(Exception):  # a streaming handler may still be writing; the loop stops anyway
            fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def redirect_to(location: str, status: int) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})
    return handler


async def endless(request: web.Request) -> web.StreamResponse:
    """200, then an endless body (until the client goes away)."""
    resp = web.StreamResponse(status=200)
    await resp.prepare(request)
    chunk = b"x" * 65536
    try:
        for _ in range(100_000):  # 6.5 GB at most: bounded, as every loop in a test must be
            await resp.write(chunk)
    except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
        pass
    return resp


def run_source_in_thread(runner: Any) -> tuple[threading.Thread, threading.Event]:
    stop = runner.stop_event
    t = threading.Thread(target=runner.run, daemon=True)
    t.start()
    return t, stop
