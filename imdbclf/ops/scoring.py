"""The served model: MLflow's own scoring app (`mlflow models serve` runs the same `init`), behind a guard
that bounds what a request may cost and what an error may say.

- A body over `serving.max_request_mb` is answered 413 before it is read whole.
- A Parquet body is measured here first: its columns unpacked may hold no more than the limit either
  (a 100 kB file can unpack to a gigabyte of text), and nested columns are refused.
- A JSON body is parsed once here first: invalid or nested deeper than Python can parse is a 400 whose
  one-line message never echoes the body (MLflow's echoes all of it, 71 MB for a 64 MB body).
- Every error answer keeps MLflow's JSON shape (`error_code`, `message`), its message cut to one line of
  at most `serving.max_error_chars`, and loses `stack_trace` (server paths, library internals).

`python -m imdbclf serve` runs it with uvicorn, on a model checked against its registry digest.
"""

from __future__ import annotations

import json
import os

MODEL_PATH = "IMDBCLF_SERVED_MODEL"  # the verified local copy of the model to serve
MAX_REQUEST_BYTES = "IMDBCLF_MAX_REQUEST_BYTES"
MAX_ERROR_CHARS = "IMDBCLF_MAX_ERROR_CHARS"


def one_line(message: str, limit: int) -> str:
    flat = " ".join(str(message).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Guard:
    """ASGI middleware around the scoring app (see the module's docstring)."""

    def __init__(self, app, max_request_bytes: int, max_error_chars: int):
        self.app, self.max_bytes, self.max_chars = app, max_request_bytes, max_error_chars

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers") or []:  # the first of each, as the scoring app reads them
            headers.setdefault(key.lower(), value)
        declared = headers.get(b"content-length", b"").decode() or "0"
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._error(send, 413, "REQUEST_TOO_LARGE", self._too_large(int(declared)))
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._error(send, 413, "REQUEST_TOO_LARGE", self._too_large(len(body)))
        mime = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if b"parquet" in mime and body:
            if problem := self._parquet_problem(body):
                status = 413 if "unpacks" in problem else 400
                return await self._error(send, status, "REQUEST_TOO_LARGE" if status == 413 else "BAD_REQUEST",
                                         problem)
        if b"json" in mime and body:
            try:
                json.loads(body)
            except RecursionError:
                return await self._error(send, 400, "BAD_REQUEST", "the JSON body is nested too deeply")
            except ValueError as err:
                reason = one_line(getattr(err, "msg", err), 100)
                return await self._error(send, 400, "BAD_REQUEST", f"the body is not valid JSON ({reason})")

        async def replay():
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        return await self.app(scope, replay, self._cleaning(send))

    def _parquet_problem(self, body: bytes) -> str | None:
        """What is wrong with a Parquet body before pandas unpacks it: from its footer, the bytes its
        columns unpack to, and nested types (a struct or list where a text belongs)."""
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(io.BytesIO(body))
        except Exception as err:  # noqa: BLE001 - pyarrow fails on a bad file in many types
            return f"the body is not a Parquet file ({one_line(err, 100)})"
        meta = parquet.metadata
        if meta.num_rows * 8 > self.max_bytes:  # each row's offsets and indices alone, however it is encoded
            return (f"a Parquet body of {meta.num_rows:,} rows, which unpacks to more than the limit of "
                    f"{self.max_bytes:,} bytes (serving.max_request_mb in params.yaml): send fewer texts per request")
        unpacked = sum(meta.row_group(i).column(j).total_uncompressed_size
                       for i in range(meta.num_row_groups) for j in range(meta.num_columns))
        if unpacked <= self.max_bytes:  # what the footer declares fits: count each row's text, decoded as stored
            from imdbclf.data.table import expanded_bytes, text_columns

            try:
                stored = pq.read_table(io.BytesIO(body), read_dictionary=text_columns(parquet.schema_arrow))
            except Exception as err:  # noqa: BLE001 - pyarrow fails on a bad file in many types
                return f"the body is not a readable Parquet file ({one_line(err, 100)})"
            unpacked = expanded_bytes(stored)
        if unpacked > self.max_bytes:
            return (f"a Parquet body that unpacks to {unpacked:,} bytes, over the limit of {self.max_bytes:,} "
                    "(serving.max_request_mb in params.yaml): send fewer texts per request")
        nested = [f.name for f in parquet.schema_arrow if pa.types.is_nested(f.type)]
        if nested:
            kind = parquet.schema_arrow.field(nested[0]).type
            return f"column {nested[0]!r} is nested ({kind}): send texts as strings"
        return None

    def _too_large(self, size: int) -> str:
        return (f"a request body of {size:,} bytes, over the limit of {self.max_bytes:,} "
                "(serving.max_request_mb in params.yaml): send fewer reviews per request")

    def _cleaning(self, send):
        """`send`, with an error answer's body reduced to its code and a one-line message: the start is
        held and the body gathered until its last part, then both are sent once, as one whole answer."""
        start, parts = None, []

        async def cleaned(message):
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is known: its length changes
                return None
            if start is not None and message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if message.get("more_body", False):
                    return None
                body = self._clean(b"".join(parts))
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                start = None
                return await send({"type": "http.response.body", "body": body, "more_body": False})
            return await send(message)

        return cleaned

    def _clean(self, body: bytes) -> bytes:
        try:
            error = json.loads(body)
            code, message = error.get("error_code", "INTERNAL_ERROR"), error.get("message", "")
        except (ValueError, AttributeError):
            code, message = "INTERNAL_ERROR", body.decode("utf-8", "replace")
        return json.dumps({"error_code": code, "message": one_line(message, self.max_chars)}).encode()

    async def _error(self, send, status: int, code: str, message: str):
        body = json.dumps({"error_code": code, "message": one_line(message, self.max_chars)}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def scoring_app() -> Guard:
    """What uvicorn serves: MLflow's scoring app for the model at $IMDBCLF_SERVED_MODEL, guarded."""
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[MODEL_PATH])
    return Guard(scoring_server.init(model), int(os.environ[MAX_REQUEST_BYTES]), int(os.environ[MAX_ERROR_CHARS]))
