"""POST /webhook as a raw ASGI app, answered before FastAPI's middleware, routing and
dependency machinery, which cost more than verifying and writing a delivery (see
bench/RESULTS.md). The FastAPI route in `ingest.webhook` documents it in the OpenAPI schema and
serves it wherever this path does not apply (a mounted app with a root path).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ingest.delivery import JSON, Answer, answer_delivery
from ingest.state import IngestState

log = logging.getLogger(__name__)

_CONTENT_LENGTH = b"content-length"
_SIGNATURE = b"x-hub-signature-256"
_INTERNAL_ERROR = b'{"ok":false,"error":"internal error"}'


def is_webhook_post(scope: Scope) -> bool:
    return bool(scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/webhook")


async def body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives; ClientDisconnect if the client leaves first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def serve_webhook(state: IngestState, scope: Scope, receive: Receive, send: Send) -> None:
    content_length: str | None = None
    signature: str | None = None
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            content_length = value.decode("latin-1")
        elif name == _SIGNATURE:
            signature = value.decode("latin-1")
    try:
        answer = await answer_delivery(state, content_length, signature, body_chunks(receive))
    except ClientDisconnect:
        return
    except Exception:
        # No ServerErrorMiddleware above this path: answer 500 here (the platform retries).
        log.exception("POST /webhook failed")
        answer = Answer(500, _INTERNAL_ERROR, "")
    headers = [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(answer.body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in answer.headers().items() if v),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
