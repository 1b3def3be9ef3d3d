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
# The POST calls that only read (MLflow's REST and UI API, as the path ends): everything else is a write.
READ_POSTS = frozenset({
    "mlflow/runs/search", "mlflow/experiments/search", "mlflow/logged-models/search",
    "mlflow/experiments/search-datasets", "mlflow/datasets/search", "mlflow/traces/search",
    "mlflow/traces/batchGetInfos", "mlflow/traces/metrics", "mlflow/registered-models/get-latest-versions",
    "mlflow/logged-models:batchGet", "mlflow/runs/calculate-filter-correlation",
})
API_PREFIX = re.compile(r"^/(?:ajax-)?api/[23]\.0/")
AUTH_HEADERS = (b"authorization", b"x-mlflow-authorization")  # what MLflow's own authentication reads
REMEMBERED_S = 30.0  # a login's writer-or-reader answer is reused this long (a role change: at most this late)
REMEMBERED_MAX = 1024  # logins remembered at once (the oldest forgotten first); unknown logins never


def is_read(method: str, path: str) -> bool:
    if method in READING:
        return True
    return method == "POST" and (API_PREFIX.sub("", path.rstrip("/")) in READ_POSTS or path.rstrip("/") == "/graphql")


def logins(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str] | None]:
    """Every Basic login the request carries, decoded as leniently as MLflow decodes it (any whitespace
    after the scheme, base64 without validation); None for a credential that is not one."""
    found: list[tuple[str, str] | None] = []
    for key, value in headers:
        if key.lower() not in AUTH_HEADERS:
            continue
        parts = value.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != b"basic":
            found.append(None)
            continue
        try:
            name, sep, password = base64.b64decode(parts[1]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            found.append(None)
            continue
        found.append((name, password) if sep else None)
    return found


class ReadersRead:
    """ASGI middleware: a write by a login that is neither the admin nor a member of the team role → 403.
    Fail closed: a write carrying a credential that cannot be read, or two different ones, is refused
    too; a write without any goes on to MLflow, which answers 401."""

    def __init__(self, app, writer=None):
        self.app, self.remembered = app, {}
        self.writer = writer or _writer_in_store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_read(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        carried = logins(scope.get("headers") or [])
        if not carried:
            return await self.app(scope, receive, send)
        login = carried[0]
        if login is None or any(other != login for other in carried[1:]):
            return await self._refuse(send, scope, "the request's credentials cannot be read as one Basic login")
        writes = await self._writes(login)
        if writes is False:
            return await self._refuse(send, scope, f"{login[0]} reads only (no {TEAM_ROLE} role)")
        return await self.app(scope, receive, send)  # a writer; or a wrong password, which MLflow answers 401

    async def _refuse(self, send, scope, why: str):
        body = json.dumps({"error_code": "PERMISSION_DENIED",
                           "message": f"{why}: {scope['method']} {scope['path']} is a write"}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        return await send({"type": "http.response.body", "body": body})

    async def _writes(self, login: tuple[str, str]) -> bool | None:
        """True: the admin or a team member; False: another valid login; None: not a valid login."""
        from starlette.concurrency import run_in_threadpool

        key = hashlib.sha256("\0".join(login).encode()).hexdigest()
        now = time.monotonic()
        if key in self.remembered and self.remembered[key][0] > now:
            return self.remembered[key][1]
        answer = await run_in_threadpool(self.writer, *login)
        self.remembered.pop(key, None)
        if answer is not None:  # a wrong password is not remembered: the cache cannot be grown from outside
            while len(self.remembered) >= REMEMBERED_MAX:
                self.remembered.pop(next(iter(self.remembered)))
            self.remembered[key] = (now + REMEMBERED_S, answer)
        return answer


def _writer_in_store(name: str, password: str) -> bool | None:
    from mlflow.server.auth import store

    if not store.authenticate_user(name, password):
        return None
    user = store.get_user(name)
    return bool(user.is_admin) or any(role.name == TEAM_ROLE for role in store.list_user_roles(user.id))


def team_app() -> ReadersRead:
    """MLflow's basic-auth app (FastAPI under uvicorn), behind `ReadersRead`."""
    from mlflow.server import auth

    return ReadersRead(auth.create_app())
