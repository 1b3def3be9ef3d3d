"""The team's logins to the mlflow server, over its REST API as the admin: each member's login and
generated password, and the `team` role (edit every experiment and registered model) that tells a member
from a reader.
"""

from __future__ import annotations

from dataclasses import replace

import requests

from imdbclf.errors import UserError
from imdbclf.ops.mlflow_server import ADMIN
from imdbclf.ops.services_config import MEMBER_NAME, Config, Endpoints, generated_password, generated_secret, recorded
from imdbclf.ops.team_server import TEAM_ROLE  # every member's MLflow role: edits all experiments and registered models

TEAM_GRANTS = {"experiment": "EDIT", "registered_model": "EDIT"}


def check_member_name(name: str) -> None:
    if not MEMBER_NAME.fullmatch(name) or name == ADMIN:
        raise UserError(f"member name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, not '{ADMIN}')")


def _auth_api(config: Config, endpoints: Endpoints, method: str, path: str, **kwargs) -> dict:
    """One call to the mlflow server's user and role API, as its admin."""
    response = requests.request(method, f"{endpoints.tracking_uri}{path}", timeout=60, verify=endpoints.verify,
                                auth=(ADMIN, generated_password(config, "mlflow-admin")), **kwargs)
    if not response.ok:
        raise UserError(f"mlflow server {method} {path}: HTTP {response.status_code} {response.text.strip()[:200]}")
    return response.json() if response.content else {}


def _auth_routes():
    """MLflow's auth API paths (importing them imports the server app, which warns about Starlette)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server.auth import routes
    return routes


def ensure_team_role(config: Config, endpoints: Endpoints) -> int:
    """The `team` role (edit every experiment and registered model), made once; its id."""
    routes = _auth_routes()
    roles = _auth_api(config, endpoints, "GET", routes.LIST_ROLES, params={"workspace": "default"})["roles"]
    role = next((r for r in roles if r["name"] == TEAM_ROLE), None)
    if role is None:
        role = _auth_api(config, endpoints, "POST", routes.CREATE_ROLE, json={
            "workspace": "default", "name": TEAM_ROLE,
            "description": "team members: run the pipeline (edit every experiment and registered model)"})["role"]
        for resource_type, permission in TEAM_GRANTS.items():
            _auth_api(config, endpoints, "POST", routes.ADD_ROLE_PERMISSION, json={
                "role_id": role["id"], "resource_type": resource_type, "resource_pattern": "*",
                "permission": permission})
    return int(role["id"])


def has_team_role(config: Config, endpoints: Endpoints, name: str) -> bool:
    role_id = ensure_team_role(config, endpoints)
    assigned = _auth_api(config, endpoints, "GET", _auth_routes().LIST_USER_ROLES, params={"username": name})["roles"]
    return any(int(r["id"]) == role_id for r in assigned)


def add_member(config: Config, name: str, read_only: bool = False) -> Endpoints:
    """A login to the mlflow server for `name`, with a generated password (0600 in `members/`); a member
    gets the team role; a read-only one stays at the default READ, writes nothing (`team_server`), and its
    exports carry no tuning login. Idempotent."""
    routes = _auth_routes()
    check_member_name(name)
    reached, _ = recorded(config)
    password = generated_secret(config.member_file(name))
    known = requests.get(f"{reached.tracking_uri}{routes.GET_USER}", params={"username": name}, timeout=60,
                         verify=reached.verify, auth=(ADMIN, generated_password(config, "mlflow-admin")))
    if known.status_code == 404 or "RESOURCE_DOES_NOT_EXIST" in known.text:
        _auth_api(config, reached, "POST", routes.CREATE_USER, json={"username": name, "password": password})
    elif not known.ok:
        raise UserError(f"mlflow server: looking up user {name}: HTTP {known.status_code} {known.text.strip()[:200]}")
    role_id = ensure_team_role(config, reached)
    assigned = _auth_api(config, reached, "GET", routes.LIST_USER_ROLES, params={"username": name})["roles"]
    has_role = any(int(r["id"]) == role_id for r in assigned)
    if not read_only and not has_role:
        _auth_api(config, reached, "POST", routes.ASSIGN_ROLE, json={"username": name, "role_id": role_id})
    elif read_only and has_role:
        _auth_api(config, reached, "DELETE", routes.UNASSIGN_ROLE, json={"username": name, "role_id": role_id})
    return replace(reached, member=(name, password), read_only=read_only)
