"""Run an aiohttp.web application on 127.0.0.1 in a background thread: what every fake service shares."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class LoopbackServer:
    """``server = LoopbackServer(app)``: serving on ``server.port`` until ``server.stop()``."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0, name: str | None = None,
                 backlog: int = 128, cleanup_timeout: float = 10.0, **runner_options) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, **runner_options)
        self._cleanup_timeout = cleanup_timeout
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, host, port, backlog=backlog).start())
        self.port: int = self._runner.addresses[0][1]
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(self._cleanup_timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
