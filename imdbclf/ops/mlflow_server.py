"""The team's `mlflow server` process: MLflow's basic-auth settings, its admin login made before the
workers start, the server started in its own session on the PostgreSQL backend (`team_server`'s app,
TLS when asked), found again from the state file, and stopped as one process group.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from imdbclf import processes
from imdbclf.errors import UserError
from imdbclf.ops import team_server, tls
from imdbclf.ops.services_config import MLFLOW_ROLE, Config, Endpoints, generated_password, read_state

ADMIN = "admin"                     # the mlflow server's administrator: adds members, runs no pipeline


def mlflow_process(state: dict) -> psutil.Process | None:
    """The mlflow server that `up` started, if it still runs (not another process that reused its pid)."""
    if "mlflow_pid" not in state:
        return None
    return processes.running(state["mlflow_pid"], state["mlflow_started"])


def _write_auth_config(config: Config, endpoints: Endpoints) -> None:
    """MLflow's basic-auth settings (0600: they hold the mlflow role's password): users and grants in
    their own database, new users READ at most, the generated admin password (used at the first start)."""
    text = "\n".join(["[mlflow]", "default_permission = READ",
                      f"database_uri = {endpoints.local_uri(MLFLOW_ROLE, 'mlflow_auth')}",
                      f"admin_username = {ADMIN}", f"admin_password = {generated_password(config, 'mlflow-admin')}",
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth", ""])
    tls.write_private(config.auth_config, text.encode())


def start_mlflow(config: Config, endpoints: Endpoints, certificates: tls.Certificates | None) -> psutil.Process:
    config.artifacts.mkdir(exist_ok=True)
    log = config.root / "mlflow.log"
    _write_auth_config(config, endpoints)
    host_port = f"{endpoints.url_host}:{config.mlflow_port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", team_server.APP_NAME,
           "--artifacts-destination", str(config.artifacts.resolve()), "--serve-artifacts",
           "--host", config.host, "--port", str(config.mlflow_port), "--workers", str(config.workers),
           "--allowed-hosts", f"{endpoints.url_host},{host_port}"]
    if certificates:
        cmd += ["--uvicorn-opts", f"--ssl-keyfile {shlex.quote(str(certificates.key))} "
                                  f"--ssl-certfile {shlex.quote(str(certificates.cert))}"]
    # --backend-store-uri through its environment variable: a password on a command line is public (ps)
    # MLflow's job runner (GenAI evaluation, prompt optimisation; ~2 GB in 8 processes) unless asked for
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ,
           "MLFLOW_BACKEND_STORE_URI": endpoints.local_uri(MLFLOW_ROLE, "mlflow"),
           "MLFLOW_AUTH_CONFIG_PATH": str(config.auth_config.resolve()),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": generated_password(config, "flask-secret"),
           # where `--app-name` finds team_server's entry point, and the package it names
           "PYTHONPATH": os.pathsep.join([str(team_server.ENTRY_POINT_PATH), str(Path(__file__).parents[2]),
                                          *filter(None, [os.environ.get("PYTHONPATH")])])}
    _bootstrap_admin(env, log)
    with open(log, "ab") as out:  # its own session: `down` stops the server and its workers as one group
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    deadline = time.monotonic() + config.timeout_s
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{endpoints.tracking_uri}/health", timeout=2, verify=endpoints.verify).ok:
                return psutil.Process(process.pid)
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_group(process.pid)
            why = "exited" if process.returncode is not None else f"did not answer within {config.timeout_s:.0f} s"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise UserError(f"mlflow server {why}; the end of {log}:\n{tail}")
        time.sleep(1)


def _bootstrap_admin(env: dict[str, str], log: Path) -> None:
    """The admin login, made once before the server's workers start: each of them would otherwise try to
    make it at the first start (`mlflow server` does this itself for `basic-auth` only)."""
    done = subprocess.run([sys.executable, "-c", "from mlflow.server.auth import bootstrap_admin_user as b; b()"],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    with open(log, "a") as out:
        out.write(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise UserError(f"mlflow server: its admin login could not be made; the end of {log}:\n{tail}")


def _stop_group(pid: int, timeout_s: float = 30) -> None:
    """SIGTERM to the server's process group (server, uvicorn, its workers), SIGKILL to what outlives it."""
    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        os.killpg(pid, signal.SIGTERM)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return

    def gone(process: psutil.Process) -> bool:  # a zombie has exited: only its parent's wait is missing
        with contextlib.suppress(ChildProcessError):
            os.waitpid(process.pid, os.WNOHANG)  # our own child (the tests' fixture): reap it
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + timeout_s
    while not all(gone(m) for m in members):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def stop_mlflow(config: Config) -> None:
    """Stop the mlflow server that `up` started in this folder, if it still runs."""
    state = read_state(config)
    process = mlflow_process(state)
    if process is not None:
        _stop_group(process.pid)
