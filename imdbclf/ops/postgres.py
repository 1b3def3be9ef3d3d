"""The team's PostgreSQL cluster: made once with initdb, started and stopped with pg_ctl, who may log in
from where (pg_hba.conf), the least-privileged roles and the databases each of them owns.

initdb and pg_ctl refuse to run as root, so a root user's cluster belongs to an unprivileged system user
(`Config.os_user`, created when missing), which needs to be able to reach the folder.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from imdbclf.errors import UserError
from imdbclf.ops import tls
from imdbclf.ops.services_config import (
    LOOPBACK,
    MLFLOW_ROLE,
    ROLE,
    TUNING_ROLE,
    Config,
    Endpoints,
    check_port_free,
    is_loopback,
)

DATABASES = {"mlflow": MLFLOW_ROLE, "mlflow_auth": MLFLOW_ROLE, "optuna": TUNING_ROLE}  # each and its owner
HBA_BEGIN, HBA_END = "# imdbclf services: begin", "# imdbclf services: end"


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


def start_postgres(config: Config, password: str, certificates: tls.Certificates | None) -> None:
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
    check_port_free(config.host, config.pg_port, "PostgreSQL", "make services PG_PORT=..., or --pg-port")
    log = config.root / "postgres.log"
    log.touch()
    _give_to(log, user)
    # TCP only, on the address and loopback (the superuser's way in): no Unix socket, whose path may be
    # too long or not writable
    addresses = config.host if is_loopback(config.host) else f"{config.host},{LOOPBACK}"
    options = f"-h {addresses} -p {config.pg_port} -k ''"
    if certificates:
        options += f" -c ssl=on -c ssl_cert_file={config.data.resolve()}/server.crt" \
                   f" -c ssl_key_file={config.data.resolve()}/server.key"
    _pg(config, user, "pg_ctl", "start", "-w", "-t", str(int(config.timeout_s)), "-D", config.data.resolve(),
        "-l", log.resolve(), "-o", options)


def _admin(endpoints: Endpoints, database: str = "postgres"):
    """The superuser's connection, over loopback (autocommit: CREATE DATABASE is no transaction)."""
    import psycopg  # the driver SQLAlchemy 2.1 (MLflow, Optuna) picks for postgresql:// URLs

    try:
        return psycopg.connect(endpoints.local_uri(ROLE, database), connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as err:
        raise UserError(f"PostgreSQL on {LOOPBACK}:{endpoints.pg_port}: {str(err).strip().splitlines()[-1]}"
                        " (was the password file replaced? Delete the services folder to start afresh)") from None


def check_ssl(endpoints: Endpoints, wanted: bool) -> None:
    """A cluster started earlier with the other TLS setting keeps it until restarted."""
    with _admin(endpoints) as db:
        if (db.execute("SHOW ssl").fetchone()[0] == "on") != wanted:
            raise UserError(f"PostgreSQL on port {endpoints.pg_port} runs {'without' if wanted else 'with'} TLS, "
                            "started with another --tls setting: stop the services first (make services-down)")


def ensure_roles(endpoints: Endpoints) -> None:
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


def stop_postgres(config: Config) -> None:
    """Stop the cluster, if it runs; its data stay in the folder."""
    if (config.data / "PG_VERSION").exists() and postgres_bindir() is not None:
        user = _cluster_user(config)
        if _pg(config, user, "pg_ctl", "status", "-D", config.data.resolve(), check=False).returncode == 0:
            _pg(config, user, "pg_ctl", "stop", "-w", "-m", "fast", "-D", config.data.resolve())
