"""HEAD runs the GET it asks about and sends only its status and headers (``api.head``): a streamed answer is not
made, however large."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from api.head import AnswerHead


def test_head_of_a_stream_stops_it_after_its_headers() -> None:
    made: list[int] = []
    app = FastAPI()

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def rows() -> Iterator[str]:
            for row in range(5_000):
                made.append(row)
                yield "row\n"

        return StreamingResponse(rows(), media_type="text/csv", headers={"Content-Disposition": "attachment"})

    app.add_middleware(AnswerHead)
    with TestClient(app) as client:
        head = client.head("/stream")
        assert (head.status_code, head.content, head.headers["content-disposition"]) == (200, b"", "attachment")
        assert len(made) < 10  # the 5,000 rows were never made
        made.clear()
        assert len(client.get("/stream").text.splitlines()) == 5_000 == len(made)  # GET: the whole stream
