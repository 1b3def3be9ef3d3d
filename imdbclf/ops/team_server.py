"""The team's mlflow server app: MLflow's basic-auth app, in which a reader writes nothing.

MLflow's basic-auth lets every login create experiments, runs, artifacts and registered models, and then
manage what it created. Here only the admin and the logins with the team role write: any other login may
GET and HEAD, and POST only the calls that search or get; everything else is answered 403 before MLflow
sees it. A wrong or missing login goes on to MLflow, which answers 401.

`mlflow server --app-name imdbclf-team` loads it by name, as it loads `basic-auth`: the entry point is
declared by the distribution metadata in `mlflow_app/`, which `services` puts on the server's
PYTHONPATH, so nothing needs installing and MLflow is not forked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from pathlib import Path

APP_NAME = "imdbclf-team"
ENTRY_POINT_PATH = Path(__file__).parent / "mlflow_app"  # the folder that declares APP_NAME
TEAM_ROLE = "team"  # every member's MLflow role: edits all experiments and registered models
READING = ("GET", "HEAD", "OPTIONS")
# POSTs that only read: runs/search, experiments/search, logged-models/search, datasets/search,
# metrics/get-history-bulk..., traces/batch-get, ...: the last part of the path says so
READ_CALL = re.compile(r"/(?:search|get|list|batch-get)(?:[-:_][\w-]*)?$|:(?:search|batchGet)$")
REMEMBERED_S = 30.0  # a login's writer-or-reader answer is reused this long (a role change: at most this late)


def is_read(method: str, path: str) -> bool:
    return method in READING or (method == "POST" and bool(READ_CALL.search(path.rstrip("/"))))


def basic_login(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    for key, value in headers:
        if key.lower() == b"authorization" and value[:6].lower() == b"basic ":
            try:
                name, _, password = base64.b64decode(value[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return name, password
    return None


class ReadersRead:
    """ASGI middleware: a write by a login that is neither the admin nor a member of the team role → 403."""

    def __init__(self, app, writer=None):
        self.app, self.remembered = app, {}
        self.writer = writer or _writer_in_store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_read(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        login = basic_login(scope.get("headers") or [])
        if login is not None and await self._writes(login) is False:
            body = json.dumps({"error_code": "PERMISSION_DENIED",
                               "message": f"{login[0]} reads only (no {TEAM_ROLE} role): {scope['method']} "
                                          f"{scope['path']} is a write"}).encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})
        return await self.app(scope, receive, send)

    async def _writes(self, login: tuple[str, str]) -> bool | None:
        """True: the admin or a team member; False: another valid login; None: not a valid login."""
        from starlette.concurrency import run_in_threadpool

        key = hashlib.sha256("\0".join(login).encode()).hexdigest()
        now = time.monotonic()
        if key in self.remembered and self.remembered[key][0] > now:
            return self.remembered[key][1]
        answer = await run_in_threadpool(self.writer, *login)
        self.remembered[key] = (now + REMEMBERED_S, answer)
        return answer


def _writer_in_store(name: str, password: str) -> bool | None:
    from mlflow.server.auth import store

    if not store.authenticate_user(name, password):
        return None
    user = store.get_user(name)
    return bool(user.is_admin) or any(role.name == TEAM_ROLE for role in store.list_user_roles(user.id))


def create_app():
    """MLflow's basic-auth app (FastAPI under uvicorn), behind `ReadersRead`."""
    from mlflow.server import auth

    return ReadersRead(auth.create_app())
