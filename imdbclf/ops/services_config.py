"""Where the team services keep their state and how clients reach them: `Config` (the folder, the
address, the ports), `Endpoints` (the URLs and logins `up` prints), the PostgreSQL roles, the secrets
generated into the folder and the state file (`services.json`) that `up` writes.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import json
import os
import re
import secrets
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path

from imdbclf.errors import UserError

ROLE = "imdbclf"                    # the cluster's superuser: from this machine's loopback only
TUNING_ROLE = "optuna"              # the tuning workers: the Optuna database(s), nothing else
MLFLOW_ROLE = "mlflow"              # the mlflow server: MLflow's database, nothing else
MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LOOPBACK = "127.0.0.1"


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
        return self.tls == "on" or (self.tls == "auto" and not is_loopback(self.host))

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
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address

    @property
    def tracking_uri(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.url_host}:{self.mlflow_port}"

    def database_uri(self, database: str) -> str:
        """What the tuning workers log in with: the `optuna` role, which owns the Optuna databases only;
        over TLS, the server's certificate must be signed by our CA and name the host (verify-full)."""
        uri = f"postgresql://{TUNING_ROLE}:{self.passwords[TUNING_ROLE]}@{self.url_host}:{self.pg_port}/{database}"
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


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host) if ":" not in host else host).is_loopback
    except (OSError, ValueError):
        return False


def check_port_free(host: str, port: int, what: str, setting: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
        try:
            s.bind((host, port))
        except OSError as err:
            raise UserError(f"{what}: {host}:{port} is not available ({err.strerror}); "
                            f"pick another port ({setting})") from None


def generated_password(config: Config, role: str = ROLE) -> str:
    """`role`'s password, generated at the first start and kept 0600 in the services folder."""
    return generated_secret(config.secret_file(role))


def generated_secret(path: Path) -> str:
    """A random secret, generated once into a 0600 file."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def role_passwords(config: Config) -> dict[str, str]:
    return {role: generated_password(config, role) for role in (ROLE, TUNING_ROLE, MLFLOW_ROLE)}


def read_state(config: Config) -> dict:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads(config.state_file.read_text())
    return {}


def recorded(config: Config) -> tuple[Endpoints, dict]:
    """The services that `up` started in this folder, as it recorded them (no member's login)."""
    state = read_state(config)
    if not state or not config.password_file.exists():
        raise UserError(f"no services in {config.root}: start them with `make services`")
    return Endpoints(state["host"], state["pg_port"], state["mlflow_port"], role_passwords(config),
                     Path(state["ca"]) if state.get("ca") else None), state
