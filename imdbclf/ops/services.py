"""Team services: a PostgreSQL cluster and an `mlflow server` on it, started and stopped with one command.

One machine runs them (`make services`, i.e. `python -m imdbclf services up`); every machine of the team
points the pipeline at them with the variables that `up` prints:

    MLFLOW_TRACKING_URI=https://<host>:<mlflow port>           runs, registry, artifacts (served)
    MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD         a team member's login to the mlflow server
    MLFLOW_TRACKING_SERVER_CERT_PATH=<services>/tls/ca.crt      the CA that clients trust (TLS only)
    IMDBCLF_TUNING_STORAGE=postgresql://...@<host>:<port>/optuna?sslmode=verify-full&...   the Optuna studies

Both live in one folder (`.services/` by default): the cluster's data, the served artifact store, the
logs, generated passwords (0600), the TLS CA and certificate (`tls/`) and `services.json` (what is
running where).

Only the team gets in. The mlflow server runs MLflow's basic-auth app behind `team_server`: anonymous
requests get 401, a generated `admin` (password in `mlflow-admin.password`, never MLflow's default) adds
members, each member gets the `team` role (edit every experiment and registered model), and a login
without it reads only: it creates nothing, and its exports carry no tuning login. Bound to anything but
loopback, both services speak TLS with a CA made at the first start (or the team's own files, by path):
PostgreSQL with ssl=on, the workers connecting with sslmode=verify-full, and the mlflow server over
HTTPS, its clients verifying it against the CA.

Least privilege in PostgreSQL: the cluster's superuser (`imdbclf`, its own password) logs in from this
machine's loopback only; the tuning workers get a role (`optuna`) that owns the Optuna database and
nothing else, the mlflow server a role (`mlflow`) that owns MLflow's; neither is a superuser, creates
roles or databases, or runs programs (`COPY ... TO PROGRAM` needs a superuser), and neither can connect
to the other's database (pg_hba.conf and CONNECT revoked from PUBLIC). `down` stops both and keeps
the folder, so the next `up` finds every run, model and study again; delete the folder to start over.
The tests start their own services in a temp folder with this same code.

initdb and pg_ctl refuse to run as root, so a root user's cluster belongs to an unprivileged system user
(`imdbclf`, created when missing), which needs to be able to reach the folder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from dataclasses import replace

from imdbclf.errors import UserError
from imdbclf.ops import tls
from imdbclf.ops.members import TEAM_GRANTS, TEAM_ROLE, add_member, check_member_name, ensure_team_role, has_team_role
from imdbclf.ops.mlflow_server import ADMIN, mlflow_process, start_mlflow, stop_mlflow
from imdbclf.ops.postgres import (
    DATABASES,
    HBA_BEGIN,
    HBA_END,
    check_ssl,
    create_databases,
    ensure_roles,
    postgres_bindir,
    start_postgres,
    stop_postgres,
)
from imdbclf.ops.services_config import (
    LOOPBACK,
    MEMBER_NAME,
    MLFLOW_ROLE,
    ROLE,
    TUNING_ROLE,
    Config,
    Endpoints,
    check_port_free,
    generated_secret,
    read_state,
    recorded,
    role_passwords,
)

# This module is the face: `up`, `down`, `endpoints`. The parts: services_config.py (Config, Endpoints, the
# state file), postgres.py (the cluster, roles, databases), mlflow_server.py (the server process),
# members.py (logins over the server's REST API); the command line: services_cli.py.
__all__ = ["ADMIN", "DATABASES", "HBA_BEGIN", "HBA_END", "LOOPBACK", "MEMBER_NAME", "MLFLOW_ROLE", "ROLE",
           "TEAM_GRANTS", "TEAM_ROLE", "TUNING_ROLE", "Config", "Endpoints", "add_member", "create_databases",
           "down", "endpoints", "postgres_bindir", "up"]


def _check_host(host: str) -> None:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            raise UserError(f"--host {host}: give the address other machines reach this one at "
                            "(the printed URLs use it), not a wildcard")


def _certificates(config: Config) -> tls.Certificates | None:
    if not config.uses_tls:
        return None
    if config.tls_files:
        return tls.given(*config.tls_files)
    hosts = list(dict.fromkeys([config.host, LOOPBACK, "localhost"]))  # the address, and this machine's own
    return tls.ensure(config.root / "tls", hosts)


def up(config: Config) -> Endpoints:
    """Start whatever of the two is not running yet; return how to reach them, as `config.member`."""
    _check_host(config.host)
    check_member_name(config.member)
    config.root.mkdir(parents=True, exist_ok=True)
    certificates = _certificates(config)
    endpoints = Endpoints(config.host, config.pg_port, config.mlflow_port, role_passwords(config),
                          certificates.ca.resolve() if certificates else None)
    state = read_state(config)
    running = mlflow_process(state)
    if running and (state.get("host"), state.get("pg_port"), state.get("mlflow_port"), state.get("tls", False)) != (
            config.host, config.pg_port, config.mlflow_port, certificates is not None):
        raise UserError(f"services in {config.root} already run on {state['host']} (PostgreSQL "
                        f"{state['pg_port']}, MLflow {state['mlflow_port']}, TLS {state.get('tls', False)}): "
                        "stop them first (make services-down)")
    start_postgres(config, endpoints.passwords[ROLE], certificates)
    check_ssl(endpoints, certificates is not None)
    ensure_roles(endpoints)
    create_databases(endpoints)
    if running is None:
        check_port_free(config.host, config.mlflow_port, "mlflow server", "MLFLOW_PORT=..., or --mlflow-port")
        running = start_mlflow(config, endpoints, certificates)
    state = {"host": config.host, "pg_port": config.pg_port, "mlflow_port": config.mlflow_port,
             "tls": certificates is not None, "ca": str(endpoints.ca) if endpoints.ca else None,
             "member": config.member, "mlflow_pid": running.pid, "mlflow_started": running.create_time()}
    config.state_file.write_text(json.dumps(state, indent=2) + "\n")
    ensure_team_role(config, endpoints)
    return add_member(config, config.member)


def endpoints(config: Config, member: str | None = None) -> Endpoints:
    """How `member` (default: whoever started them) reaches the services that `up` started in this folder."""
    reached, state = recorded(config)
    member = member or state.get("member") or config.member
    if not config.member_file(member).exists():
        raise UserError(f"no member '{member}' in {config.root}: add them with "
                        f"`python -m imdbclf services add-user {member}`")
    return replace(reached, member=(member, generated_secret(config.member_file(member))),
                   read_only=not has_team_role(config, reached, member))


def down(config: Config) -> None:
    """Stop the mlflow server and the cluster; their data stay in the folder for the next `up`."""
    stop_mlflow(config)
    stop_postgres(config)
    config.state_file.unlink(missing_ok=True)


if __name__ == "__main__":  # `python -m imdbclf.ops.services ...`, as `python -m imdbclf services ...`
    from imdbclf.ops.services_cli import run_services_cli

    run_services_cli()
