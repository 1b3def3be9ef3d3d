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

import argparse
import contextlib
import getpass
import glob
import ipaddress
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
import requests

from imdbclf import processes
from imdbclf.errors import UserError, exit_on_user_error
from imdbclf.ops import team_server, tls

ROLE = "imdbclf"                    # the cluster's superuser: from this machine's loopback only
TUNING_ROLE = "optuna"              # the tuning workers: the Optuna database(s), nothing else
MLFLOW_ROLE = "mlflow"              # the mlflow server: MLflow's database, nothing else
DATABASES = {"mlflow": MLFLOW_ROLE, "mlflow_auth": MLFLOW_ROLE, "optuna": TUNING_ROLE}  # each and its owner
ADMIN = "admin"                     # the mlflow server's administrator: adds members, runs no pipeline
TEAM_ROLE = team_server.TEAM_ROLE   # every member's MLflow role: edits all experiments and registered models
TEAM_GRANTS = {"experiment": "EDIT", "registered_model": "EDIT"}
MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LOOPBACK = "127.0.0.1"
HBA_BEGIN, HBA_END = "# imdbclf services: begin", "# imdbclf services: end"


@dataclass(frozen=True)
class Config:
    """Where the services keep their state and where they listen (the CLI flags and Makefile variables)."""

    root: Path = Path(".services")
    host: str = "127.0.0.1"         # the address they bind to and that the printed URLs name
    pg_port: int = 5433             # not 5432: a Debian `postgresql` install runs its own cluster there
    mlflow_port: int = 5000
    workers: int = 2                # mlflow server worker processes
    os_user: str = "imdbclf"        # owns the cluster when started as root
    timeout_s: float = 180          # the first start migrates MLflow's schema into PostgreSQL: ~a minute
    tls: str = "auto"               # on, off, or auto: on unless bound to loopback
    tls_files: tuple[Path, Path, Path] | None = None   # the team's own CA, certificate and key
    member: str = field(default_factory=lambda: _default_member())  # whose login `up` prints

    @property
    def uses_tls(self) -> bool:
        return self.tls == "on" or (self.tls == "auto" and not _is_loopback(self.host))

    @property
    def data(self) -> Path:
        return self.root / "postgres"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def state_file(self) -> Path:
        return self.root / "services.json"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    def secret_file(self, role: str) -> Path:
        """The superuser's password (`password`, as before roles existed) or a role's (`<role>.password`)."""
        return self.password_file if role == ROLE else self.root / f"{role}.password"

    def member_file(self, name: str) -> Path:
        return self.root / "members" / f"{name}.password"

    @property
    def auth_config(self) -> Path:
        return self.root / "mlflow-auth.ini"


def _default_member() -> str:
    """The first member is whoever starts the services (their login name, made safe for MLflow)."""
    with contextlib.suppress(Exception):
        name = re.sub(r"[^A-Za-z0-9._-]", "-", getpass.getuser()).lstrip("._-")
        if MEMBER_NAME.fullmatch(name):
            return name
    return "member"


@dataclass(frozen=True)
class Endpoints:
    """How clients reach running services."""

    host: str
    pg_port: int
    mlflow_port: int
    passwords: dict[str, str]  # by role: the superuser's, the tuning workers', the mlflow server's
    ca: Path | None = None     # with TLS: the CA certificate clients verify both servers against
    member: tuple[str, str] | None = None  # the mlflow server login (name, password) the exports carry
    read_only: bool = False    # a reader's exports: no tuning login (the tuning role owns the studies)

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address

    @property
    def tracking_uri(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self._url_host}:{self.mlflow_port}"

    def database_uri(self, database: str) -> str:
        """What the tuning workers log in with: the `optuna` role, which owns the Optuna databases only;
        over TLS, the server's certificate must be signed by our CA and name the host (verify-full)."""
        uri = f"postgresql://{TUNING_ROLE}:{self.passwords[TUNING_ROLE]}@{self._url_host}:{self.pg_port}/{database}"
        return f"{uri}?sslmode=verify-full&sslrootcert={self.ca}" if self.ca else uri

    def local_uri(self, role: str, database: str) -> str:
        """A login of `role` from this machine, over loopback (the superuser's only way in)."""
        return f"postgresql://{role}:{self.passwords[role]}@{LOOPBACK}:{self.pg_port}/{database}"

    def env(self) -> dict[str, str]:
        """The variables that point the pipeline (and a tuning worker) at these services."""
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.member:
            env |= {"MLFLOW_TRACKING_USERNAME": self.member[0], "MLFLOW_TRACKING_PASSWORD": self.member[1]}
        if self.ca:
            env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(self.ca)
        return env if self.read_only else env | {"IMDBCLF_TUNING_STORAGE": self.database_uri("optuna")}

    def export_lines(self) -> str:
        return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in self.env().items())

    @property
    def verify(self) -> str | bool:
        """What `requests` checks the mlflow server's certificate against."""
        return str(self.ca) if self.ca else True


def postgres_bindir() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: Debian keeps them off PATH, one folder per version."""
    candidates = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
                   if Path(p).parent.name.isdigit()]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _require_bindir() -> Path:
    bindir = postgres_bindir()
    if bindir is None:
        raise UserError("PostgreSQL is not installed (no initdb/pg_ctl found): apt-get install postgresql")
    return bindir


def _cluster_user(config: Config) -> pwd.struct_passwd | None:
    """The unprivileged user that runs the cluster when we are root (created once), else None: ourselves."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(config.os_user)
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", config.os_user], capture_output=True)
    try:
        return pwd.getpwnam(config.os_user)  # also when a parallel `up` created it first
    except KeyError:
        raise UserError(f"cannot create the system user '{config.os_user}' that runs PostgreSQL "
                        "(initdb and pg_ctl refuse root)") from None


def _as(user: pwd.struct_passwd | None, cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command as `user` (None: as ourselves)."""
    ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, **ids)


def _pg(config: Config, user: pwd.struct_passwd | None, *args: str | Path, check: bool = True):
    """A PostgreSQL tool, as the cluster's user."""
    result = _as(user, [str(_require_bindir() / str(args[0])), *map(str, args[1:])], config.root)
    if check and result.returncode != 0:
        raise UserError(f"{args[0]} failed (exit {result.returncode}): "
                        f"{(result.stderr or result.stdout).strip()[-2000:]}")
    return result


def _give_to(path: Path, user: pwd.struct_passwd | None) -> None:
    if user:
        os.chown(path, user.pw_uid, user.pw_gid)


def _check_port_free(host: str, port: int, what: str, setting: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
        try:
            s.bind((host, port))
        except OSError as err:
            raise UserError(f"{what}: {host}:{port} is not available ({err.strerror}); "
                            f"pick another port ({setting})") from None


def _password(config: Config, role: str = ROLE) -> str:
    """`role`'s password, generated at the first start and kept 0600 in the services folder."""
    return _secret(config.secret_file(role))


def _secret(path: Path) -> str:
    """A random secret, generated once into a 0600 file."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _passwords(config: Config) -> dict[str, str]:
    return {role: _password(config, role) for role in (ROLE, TUNING_ROLE, MLFLOW_ROLE)}


def _hba_rules(tls_only: bool) -> str:
    """Who may log in from where, first match wins: the superuser and the mlflow server's role from
    loopback alone, the workers' role to its own database(s) (a bench's extra Optuna databases are its
    too; over TLS only when the services speak it), no one else."""
    mlflow = ",".join(db for db, owner in DATABASES.items() if owner == MLFLOW_ROLE)
    rules = [f"host all {ROLE} 127.0.0.1/32 scram-sha-256", f"host all {ROLE} ::1/128 scram-sha-256",
             f"host all {ROLE} all reject", f"host {mlflow} {MLFLOW_ROLE} 127.0.0.1/32 scram-sha-256",
             f"host {mlflow} {MLFLOW_ROLE} ::1/128 scram-sha-256", f"host all {MLFLOW_ROLE} all reject",
             f"host{'ssl' if tls_only else ''} all {TUNING_ROLE} all scram-sha-256", "host all all all reject"]
    return "\n".join([HBA_BEGIN, *rules, HBA_END]) + "\n"


def _write_hba(config: Config, tls_only: bool) -> bool:
    """pg_hba.conf with our rules in place of any earlier version of them; True if it changed."""
    path = config.data / "pg_hba.conf"
    text = path.read_text()
    if HBA_BEGIN in text:
        text = text[: text.index(HBA_BEGIN)] + text[text.index(HBA_END) + len(HBA_END) + 1:]
    text = text.replace("host all all all scram-sha-256\n", "")  # the one rule of earlier versions
    updated = _hba_rules(tls_only) + text  # first: initdb's own loopback rules would match before ours
    if updated == path.read_text():
        return False
    path.write_text(updated)
    return True


def _start_postgres(config: Config, password: str, certificates: tls.Certificates | None) -> None:
    """Create the cluster once (password login from any address it listens on), then start it (with
    TLS: its own copy of the certificate and key, which PostgreSQL wants owned by its user)."""
    user = _cluster_user(config)
    if user:  # the cluster's user must reach the folder; its parents are the caller's to open
        os.chmod(config.root, 0o711)
        if _as(user, ["test", "-x", str(config.root.resolve())], config.root).returncode != 0:
            raise UserError(f"{config.root.resolve()}: user '{user.pw_name}', who runs PostgreSQL because initdb "
                            "refuses root, cannot enter it: make its parent folders world-executable "
                            "(chmod o+x) or put the services elsewhere (SERVICES_DIR=..., or --dir)")
    if not (config.data / "PG_VERSION").exists():
        shutil.rmtree(config.data, ignore_errors=True)  # a half-made cluster from an interrupted initdb
        config.data.mkdir(mode=0o700)
        _give_to(config.data, user)
        with tempfile.NamedTemporaryFile("w", dir=config.root, prefix=".pw-") as pwfile:
            pwfile.write(password)
            pwfile.flush()
            _give_to(Path(pwfile.name), user)
            _pg(config, user, "initdb", "-D", config.data.resolve(), "-U", ROLE, "--pwfile", pwfile.name,
                "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C")
    changed = _write_hba(config, certificates is not None)  # listen_addresses: who can try; pg_hba.conf: who gets in
    if certificates:
        for name, source in (("server.crt", certificates.cert), ("server.key", certificates.key)):
            tls.write_private(config.data / name, source.read_bytes())
            _give_to(config.data / name, user)
    if _pg(config, user, "pg_ctl", "status", "-D", config.data.resolve(), check=False).returncode == 0:
        # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, ...
        lines = (config.data / "postmaster.pid").read_text().splitlines()
        if (lines[5].strip().split(",")[0], int(lines[3])) != (config.host, config.pg_port):
            raise UserError(f"PostgreSQL in {config.data} already runs on {lines[5].strip()}:{lines[3].strip()}: "
                            "stop the services first (make services-down)")
        if changed:
            _pg(config, user, "pg_ctl", "reload", "-D", config.data.resolve())
        return
    _check_port_free(config.host, config.pg_port, "PostgreSQL", "make services PG_PORT=..., or --pg-port")
    log = config.root / "postgres.log"
    log.touch()
    _give_to(log, user)
    # TCP only, on the address and loopback (the superuser's way in): no Unix socket, whose path may be
    # too long or not writable
    addresses = config.host if _is_loopback(config.host) else f"{config.host},{LOOPBACK}"
    options = f"-h {addresses} -p {config.pg_port} -k ''"
    if certificates:
        options += f" -c ssl=on -c ssl_cert_file={config.data.resolve()}/server.crt" \
                   f" -c ssl_key_file={config.data.resolve()}/server.key"
    _pg(config, user, "pg_ctl", "start", "-w", "-t", str(int(config.timeout_s)), "-D", config.data.resolve(),
        "-l", log.resolve(), "-o", options)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host) if ":" not in host else host).is_loopback
    except (OSError, ValueError):
        return False


def _admin(endpoints: Endpoints, database: str = "postgres"):
    """The superuser's connection, over loopback (autocommit: CREATE DATABASE is no transaction)."""
    import psycopg  # the driver SQLAlchemy 2.1 (MLflow, Optuna) picks for postgresql:// URLs

    try:
        return psycopg.connect(endpoints.local_uri(ROLE, database), connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as err:
        raise UserError(f"PostgreSQL on {LOOPBACK}:{endpoints.pg_port}: {str(err).strip().splitlines()[-1]}"
                        " (was the password file replaced? Delete the services folder to start afresh)") from None


def _ensure_roles(endpoints: Endpoints) -> None:
    """The tuning and mlflow roles: log in with their password; no superuser, no new roles or databases."""
    from psycopg import sql

    with _admin(endpoints) as db:
        for role in (TUNING_ROLE, MLFLOW_ROLE):
            verb = "ALTER" if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() else "CREATE"
            db.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                               "PASSWORD {}").format(sql.SQL(verb), sql.Identifier(role),
                                                    sql.Literal(endpoints.passwords[role])))
        for database in ("postgres", "template1"):  # no role but the superuser connects to these
            db.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))


def create_databases(endpoints: Endpoints, owners: dict[str, str] | tuple[str, ...] = DATABASES) -> None:
    """The databases (MLflow's, Optuna's, or a benchmark's own: a name alone is the tuning role's), each
    owned by its role with CONNECT revoked from PUBLIC, so no other role gets in; objects an earlier
    version created as the superuser are handed to the owner."""
    from psycopg import sql

    owners = owners if isinstance(owners, dict) else dict.fromkeys(owners, TUNING_ROLE)
    with _admin(endpoints) as db:
        for name, owner in owners.items():
            if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
            db.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner)))
            db.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    for name, owner in owners.items():
        with _admin(endpoints, name) as db:
            db.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
            objects = db.execute("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                 "c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v', 'm', 'p') "
                                 "AND pg_get_userbyid(c.relowner) <> %s", (owner,)).fetchall()
            for relation, kind in objects:
                if kind == "S" and db.execute("SELECT 1 FROM pg_depend d JOIN pg_class c ON c.oid = d.objid WHERE "
                                              "c.relname = %s AND d.deptype = 'a'", (relation,)).fetchone():
                    continue  # a column's own sequence follows its table
                keyword = {"S": "SEQUENCE", "v": "VIEW", "m": "MATERIALIZED VIEW"}.get(kind, "TABLE")
                db.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(keyword), sql.Identifier(relation),
                                                                     sql.Identifier(owner)))


def _read_state(config: Config) -> dict:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads(config.state_file.read_text())
    return {}


def _mlflow_process(state: dict) -> psutil.Process | None:
    """The mlflow server that `up` started, if it still runs (not another process that reused its pid)."""
    if "mlflow_pid" not in state:
        return None
    return processes.running(state["mlflow_pid"], state["mlflow_started"])


def _write_auth_config(config: Config, endpoints: Endpoints) -> None:
    """MLflow's basic-auth settings (0600: they hold the mlflow role's password): users and grants in
    their own database, new users READ at most, the generated admin password (used at the first start)."""
    text = "\n".join(["[mlflow]", "default_permission = READ",
                      f"database_uri = {endpoints.local_uri(MLFLOW_ROLE, 'mlflow_auth')}",
                      f"admin_username = {ADMIN}", f"admin_password = {_password(config, 'mlflow-admin')}",
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth", ""])
    tls.write_private(config.auth_config, text.encode())


def _start_mlflow(config: Config, endpoints: Endpoints, certificates: tls.Certificates | None) -> psutil.Process:
    config.artifacts.mkdir(exist_ok=True)
    log = config.root / "mlflow.log"
    _write_auth_config(config, endpoints)
    host_port = f"{endpoints._url_host}:{config.mlflow_port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", team_server.APP_NAME,
           "--artifacts-destination", str(config.artifacts.resolve()), "--serve-artifacts",
           "--host", config.host, "--port", str(config.mlflow_port), "--workers", str(config.workers),
           "--allowed-hosts", f"{endpoints._url_host},{host_port}"]
    if certificates:
        cmd += ["--uvicorn-opts", f"--ssl-keyfile {shlex.quote(str(certificates.key))} "
                                  f"--ssl-certfile {shlex.quote(str(certificates.cert))}"]
    # --backend-store-uri through its environment variable: a password on a command line is public (ps)
    # MLflow's job runner (GenAI evaluation, prompt optimisation; ~2 GB in 8 processes) unless asked for
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ,
           "MLFLOW_BACKEND_STORE_URI": endpoints.local_uri(MLFLOW_ROLE, "mlflow"),
           "MLFLOW_AUTH_CONFIG_PATH": str(config.auth_config.resolve()),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": _password(config, "flask-secret"),
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


def _check_ssl(endpoints: Endpoints, wanted: bool) -> None:
    """A cluster started earlier with the other TLS setting keeps it until restarted."""
    with _admin(endpoints) as db:
        if (db.execute("SHOW ssl").fetchone()[0] == "on") != wanted:
            raise UserError(f"PostgreSQL on port {endpoints.pg_port} runs {'without' if wanted else 'with'} TLS, "
                            "started with another --tls setting: stop the services first (make services-down)")


def up(config: Config) -> Endpoints:
    """Start whatever of the two is not running yet; return how to reach them, as `config.member`."""
    _check_host(config.host)
    _check_member_name(config.member)
    config.root.mkdir(parents=True, exist_ok=True)
    certificates = _certificates(config)
    endpoints = Endpoints(config.host, config.pg_port, config.mlflow_port, _passwords(config),
                          certificates.ca.resolve() if certificates else None)
    state = _read_state(config)
    running = _mlflow_process(state)
    if running and (state.get("host"), state.get("pg_port"), state.get("mlflow_port"), state.get("tls", False)) != (
            config.host, config.pg_port, config.mlflow_port, certificates is not None):
        raise UserError(f"services in {config.root} already run on {state['host']} (PostgreSQL "
                        f"{state['pg_port']}, MLflow {state['mlflow_port']}, TLS {state.get('tls', False)}): "
                        "stop them first (make services-down)")
    _start_postgres(config, endpoints.passwords[ROLE], certificates)
    _check_ssl(endpoints, certificates is not None)
    _ensure_roles(endpoints)
    create_databases(endpoints)
    if running is None:
        _check_port_free(config.host, config.mlflow_port, "mlflow server", "MLFLOW_PORT=..., or --mlflow-port")
        running = _start_mlflow(config, endpoints, certificates)
    state = {"host": config.host, "pg_port": config.pg_port, "mlflow_port": config.mlflow_port,
             "tls": certificates is not None, "ca": str(endpoints.ca) if endpoints.ca else None,
             "member": config.member, "mlflow_pid": running.pid, "mlflow_started": running.create_time()}
    config.state_file.write_text(json.dumps(state, indent=2) + "\n")
    _ensure_team_role(config, endpoints)
    return add_member(config, config.member)


def _recorded(config: Config) -> tuple[Endpoints, dict]:
    """The services that `up` started in this folder, as it recorded them (no member's login)."""
    state = _read_state(config)
    if not state or not config.password_file.exists():
        raise UserError(f"no services in {config.root}: start them with `make services`")
    return Endpoints(state["host"], state["pg_port"], state["mlflow_port"], _passwords(config),
                     Path(state["ca"]) if state.get("ca") else None), state


def endpoints(config: Config, member: str | None = None) -> Endpoints:
    """How `member` (default: whoever started them) reaches the services that `up` started in this folder."""
    reached, state = _recorded(config)
    member = member or state.get("member") or config.member
    if not config.member_file(member).exists():
        raise UserError(f"no member '{member}' in {config.root}: add them with "
                        f"`python -m imdbclf services add-user {member}`")
    return replace(reached, member=(member, _secret(config.member_file(member))),
                   read_only=not _has_team_role(config, reached, member))


def _check_member_name(name: str) -> None:
    if not MEMBER_NAME.fullmatch(name) or name == ADMIN:
        raise UserError(f"member name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, not '{ADMIN}')")


def _auth_api(config: Config, endpoints: Endpoints, method: str, path: str, **kwargs) -> dict:
    """One call to the mlflow server's user and role API, as its admin."""
    response = requests.request(method, f"{endpoints.tracking_uri}{path}", timeout=60, verify=endpoints.verify,
                                auth=(ADMIN, _password(config, "mlflow-admin")), **kwargs)
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


def _ensure_team_role(config: Config, endpoints: Endpoints) -> int:
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


def _has_team_role(config: Config, endpoints: Endpoints, name: str) -> bool:
    role_id = _ensure_team_role(config, endpoints)
    assigned = _auth_api(config, endpoints, "GET", _auth_routes().LIST_USER_ROLES, params={"username": name})["roles"]
    return any(int(r["id"]) == role_id for r in assigned)


def add_member(config: Config, name: str, read_only: bool = False) -> Endpoints:
    """A login to the mlflow server for `name`, with a generated password (0600 in `members/`); a member
    gets the team role; a read-only one stays at the default READ, writes nothing (`team_server`), and its
    exports carry no tuning login. Idempotent."""
    routes = _auth_routes()
    _check_member_name(name)
    reached, _ = _recorded(config)
    password = _secret(config.member_file(name))
    known = requests.get(f"{reached.tracking_uri}{routes.GET_USER}", params={"username": name}, timeout=60,
                         verify=reached.verify, auth=(ADMIN, _password(config, "mlflow-admin")))
    if known.status_code == 404 or "RESOURCE_DOES_NOT_EXIST" in known.text:
        _auth_api(config, reached, "POST", routes.CREATE_USER, json={"username": name, "password": password})
    elif not known.ok:
        raise UserError(f"mlflow server: looking up user {name}: HTTP {known.status_code} {known.text.strip()[:200]}")
    role_id = _ensure_team_role(config, reached)
    assigned = _auth_api(config, reached, "GET", routes.LIST_USER_ROLES, params={"username": name})["roles"]
    has_role = any(int(r["id"]) == role_id for r in assigned)
    if not read_only and not has_role:
        _auth_api(config, reached, "POST", routes.ASSIGN_ROLE, json={"username": name, "role_id": role_id})
    elif read_only and has_role:
        _auth_api(config, reached, "DELETE", routes.UNASSIGN_ROLE, json={"username": name, "role_id": role_id})
    return replace(reached, member=(name, password), read_only=read_only)


def down(config: Config) -> None:
    """Stop the mlflow server and the cluster; their data stay in the folder for the next `up`."""
    state = _read_state(config)
    process = _mlflow_process(state)
    if process is not None:
        _stop_group(process.pid)
    if (config.data / "PG_VERSION").exists() and postgres_bindir() is not None:
        user = _cluster_user(config)
        if _pg(config, user, "pg_ctl", "status", "-D", config.data.resolve(), check=False).returncode == 0:
            _pg(config, user, "pg_ctl", "stop", "-w", "-m", "fast", "-D", config.data.resolve())
    config.state_file.unlink(missing_ok=True)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imdbclf services", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "env", "add-user"],
                        help="up: start and print the exports; down: stop; env: print the exports again (of "
                             "NAME, if given); add-user NAME: a team member's login, and the exports they paste")
    parser.add_argument("name", nargs="?", help="the member, for add-user and env")
    parser.add_argument("--read-only", action="store_true",
                        help="add-user: a login that reads runs and models but writes nothing")
    defaults = Config()
    parser.add_argument("--dir", type=Path, default=defaults.root,
                        help="where the services keep their state (default: %(default)s)")
    parser.add_argument("--host", default=defaults.host,
                        help="the address to bind to, named by the URLs (default: %(default)s)")
    parser.add_argument("--pg-port", type=int, default=defaults.pg_port, help="(default: %(default)s)")
    parser.add_argument("--mlflow-port", type=int, default=defaults.mlflow_port, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="mlflow server worker processes (default: %(default)s)")
    parser.add_argument("--os-user", default=defaults.os_user,
                        help="the user that runs PostgreSQL when started as root (default: %(default)s)")
    parser.add_argument("--tls", choices=["auto", "on", "off"], default=defaults.tls,
                        help="TLS for both services; auto: on unless bound to loopback (default: %(default)s)")
    parser.add_argument("--tls-files", nargs=3, type=Path, metavar=("CA", "CERT", "KEY"),
                        help="the team's own CA certificate, server certificate and key (default: made in DIR/tls)")
    parser.add_argument("--member", default=defaults.member,
                        help="up: the member whose login the exports carry (default: %(default)s)")
    args = parser.parse_args(argv)
    config = Config(args.dir, args.host, args.pg_port, args.mlflow_port, args.workers, args.os_user, tls=args.tls,
                    tls_files=tuple(args.tls_files) if args.tls_files else None, member=args.member)
    if args.action == "down":
        down(config)
        print(f"services in {config.root} stopped (their data stay there)")
        return
    if args.action == "add-user":
        if not args.name:
            raise UserError("add-user needs the member's name: python -m imdbclf services add-user NAME")
        reached = add_member(config, args.name, args.read_only)
        print(f"# {args.name}'s exports ({'read-only' if args.read_only else 'team role'}): send them privately"
              + (f", with {reached.ca} (the CA, to the same path or edit the two lines that name it)"
                 if reached.ca else ""), file=sys.stderr)
    else:
        reached = up(config) if args.action == "up" else endpoints(config, args.name)
    if args.action == "up":
        print(f"# PostgreSQL on {config.host}:{config.pg_port} (databases {', '.join(DATABASES)}; workers log in as "
              f"{TUNING_ROLE}, not a superuser), mlflow server on {reached.tracking_uri} (logins only"
              f"{', TLS' if reached.ca else ''}), state in {config.root}/", file=sys.stderr)
    print(reached.export_lines())


if __name__ == "__main__":
    main()
