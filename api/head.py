"""HEAD on every GET route: the status and headers a GET would get, without its body.

GIS clients ask before they read: GDAL's ``/vsicurl/`` (and QGIS, ogr2ogr, pyogrio, which hand it a URL) sends HEAD
first and gives up on a 405. FastAPI's routes answer only the methods they name, so this middleware runs the GET and
keeps its headers (``Content-Length`` where the answer has one; a streamed answer has none, as its GET). A streamed
body is not made at all: once the headers are out, the response is told that the client has gone, which ends the
stream.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GONE: Message = {"type": "http.disconnect"}


class AnswerHead:
    """ASGI middleware: a HEAD request runs as GET; only the response's start (status, headers) is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        answered = anyio.Event()

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.start" and not answered.is_set():
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                answered.set()
            # Every body message is dropped: HEAD has none.

        async def receive_until_answered() -> Message:
            return await _first_of(receive, answered)

        await self.app({**scope, "method": "GET"}, receive_until_answered, send_headers_only)


async def _first_of(receive: Receive, answered: anyio.Event) -> Message:
    """The client's next message, or ``GONE`` once the headers are sent (a streamed response then stops)."""
    if answered.is_set():
        return GONE
    received: list[Message] = []
    async with anyio.create_task_group() as group:

        async def pass_on() -> None:
            received.append(await receive())
            group.cancel_scope.cancel()

        async def until_answered() -> None:
            await answered.wait()
            group.cancel_scope.cancel()

        group.start_soon(pass_on)
        group.start_soon(until_answered)
    return received[0] if received else GONE
