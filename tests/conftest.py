from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from devkit.helpers import free_port, tiny_params
from imdbclf import environment

environment.use_legacy_keras()  # the tests load TensorFlow themselves, before any family does


@pytest.fixture
def params_dict(tmp_path) -> dict:
    return tiny_params(str(tmp_path / "imdb.tar.gz"))


@pytest.fixture(scope="session")
def team_services_config():
    """A PostgreSQL cluster and an mlflow server on free loopback ports, started (and stopped) by the code
    behind `make services`, with logins and TLS on as they are off loopback; its `Config`. Skipped where
    PostgreSQL is not installed."""
    from imdbclf.ops import services

    if services.postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl): apt-get install postgresql, as .ci/run does")
    # not under pytest's tmp (mode 0700): under root, PostgreSQL's unprivileged user must enter the folder
    root = Path(tempfile.mkdtemp(prefix="imdbclf-services-"))
    config = services.Config(root=root, pg_port=free_port(), mlflow_port=free_port(), workers=1, tls="on",
                             member="alice")
    try:
        services.up(config)
        yield config
    finally:
        services.down(config)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def team_services(team_services_config):
    """How the first team member reaches the services: `Endpoints` with the tracking URI (https), the
    member's login, the CA and the workers' database URLs (verify-full)."""
    from imdbclf.ops import services

    return services.endpoints(team_services_config)
