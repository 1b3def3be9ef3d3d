"""The MLflow model registry: every retrained model is registered as `<prefix><model>`; the champion
is the `champion` alias of one registered model, `<prefix>champion`, whose versions point at the
models that have held the title.

One registered model for the title makes "one champion at any moment" hold by construction: an
alias names exactly one version, and moving it is a single write, so two reports promoting at once
leave one champion (the later one), never two. Promotion is deliberate: the workspace's report
promotes its champion, a queued experiment's report does not (`python -m imdbclf promote` does).
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from imdbclf import integrity, serving
from imdbclf.errors import UserError
from imdbclf.tracking.store import with_retries

ALIAS = "champion"
# written by MLflow into a registered version's download (its name and version as YAML), not by us
DOWNLOAD_META = ("registered_model_meta",)


def champion_name(prefix: str) -> str:
    return f"{prefix}{ALIAS}"


def champion_uri(prefix: str) -> str:
    return f"models:/{champion_name(prefix)}@{ALIAS}"


def tag_version(name: str, version: str | int, tags: Mapping[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        with_retries(lambda k=key, v=value: client.set_model_version_tag(name, str(version), k, v))


def register(model_dir: Path, name: str, tags: Mapping[str, str]) -> str:
    """Log the saved family in `model_dir` as a pyfunc, register it as a new version of `name` and tag the
    version with `tags` and the md5 of every file of the logged model (`integrity.TAG`: the registry's
    record, which `download_verified` checks the artifacts against); the tag's sha256 goes into a param
    of the run that logged it, which no login can change. Returns the version."""
    info = with_retries(lambda: serving.log_model(model_dir, name))
    with tempfile.TemporaryDirectory(prefix="imdbclf-logged-") as tmp:
        logged = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=tmp)
        manifest = json.dumps(integrity.digests(Path(logged), DOWNLOAD_META), sort_keys=True)
    with_retries(lambda: MlflowClient().log_param(info.run_id, integrity.provenance_param(info.model_id),
                                                  integrity.manifest_sha256(manifest)))
    tag_version(name, info.registered_model_version, {**tags, integrity.TAG: manifest})
    return str(info.registered_model_version)


def _version_of(uri: str) -> ModelVersion:
    """The version a models:/<name>@<alias> or models:/<name>/<version> URI names."""
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if not match:
        raise UserError(f"{uri}: only a registered version (models:/<name>@<alias> or models:/<name>/<version>) "
                        "can be checked before loading; another model needs --trust")
    name, alias, number = match.groups()
    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"cannot load model {uri}: {str(err).splitlines()[0]}") from None


def check_provenance(version: ModelVersion, experiment_id: str | None) -> None:
    """The version's digest tag is the one its run recorded when it registered the model, and that run is
    in the team's experiment (`experiment_id`; None: any): else one line, and nothing is loaded."""
    where = f"{version.name} version {version.version}"
    again = "register it again (its retrain stage, then `python -m imdbclf promote`)"
    if integrity.TAG not in version.tags:
        raise UserError(f"{where} has no {integrity.TAG} tag (registered before models were checked): its files "
                        f"cannot be checked, so it is not loaded; {again}")
    model_id = logged_model_id(version)
    try:
        run = MlflowClient().get_run(version.run_id) if version.run_id and model_id else None
    except mlflow.exceptions.MlflowException:
        run = None
    if run is None:
        raise UserError(f"{where}: the run that registered it cannot be read, so its digests cannot be checked "
                        f"and it is not loaded; {again}")
    if experiment_id is not None and run.info.experiment_id != str(experiment_id):
        raise UserError(f"{where} was registered by run {run.info.run_id} of experiment {run.info.experiment_id}, "
                        f"not the team's ({experiment_id}): it is not loaded")
    recorded = run.data.params.get(integrity.provenance_param(model_id))
    if recorded is None:
        raise UserError(f"{where}: its run {run.info.run_id} recorded no digest of it (registered before runs "
                        f"recorded them), so it is not loaded; {again}")
    if integrity.manifest_sha256(version.tags[integrity.TAG]) != recorded:
        raise UserError(f"{where}: its {integrity.TAG} tag is not the one its run {run.info.run_id} recorded when "
                        "it registered the model (the tag was rewritten): it is not loaded")


def download_verified(uri: str, dst: Path, experiment_id: str | None = None) -> Path:
    """The registered version `uri` downloaded into `dst`, after its digest tag matched what its run
    recorded (`check_provenance`) and each of its files the md5 the tag records; any mismatch stops in
    one line, and nothing of it is loaded."""
    version = _version_of(uri)
    where = f"{version.name} version {version.version}"
    check_provenance(version, experiment_id)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{version.name}/{version.version}",
                                                     dst_path=str(dst)))
    for compiled in list(local.rglob("__pycache__")):  # bytecode a load in place left in the store: never
        shutil.rmtree(compiled, ignore_errors=True)    # ours to trust; Python compiles the checked sources
    integrity.verify(local, json.loads(version.tags[integrity.TAG]), f"the {integrity.TAG} tag of {where}",
                     DOWNLOAD_META)
    return local


def find_version(prefix: str, model: str, version: int | None = None, experiment: str | None = None) -> ModelVersion:
    """A registered version of `<prefix><model>`: the given one, the newest of a DVC experiment, or the newest."""
    client = MlflowClient()
    name = f"{prefix}{model}"
    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        versions = client.search_model_versions(f"name='{name}'")
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"registered model {name}: {str(err).splitlines()[0]}") from None
    if experiment is not None:
        versions = [v for v in versions if v.tags.get("dvc.exp_name") == experiment]
    if not versions:
        where = f" from experiment '{experiment}'" if experiment else ""
        raise UserError(f"registered model {name} has no version{where} (run its retrain stage first)")
    return max(versions, key=lambda v: int(v.version))


def version_exists(name: str, version: str | int | None) -> bool:
    if version is None:
        return False
    try:
        with_retries(lambda: MlflowClient().get_model_version(name, str(version)))
    except mlflow.exceptions.MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return True


def ensure_registered(name: str, version: str | int | None, model_dir: Path) -> str:
    """The registered version of the model saved in `model_dir`: `version` while the registry has it,
    else a new version logged from `model_dir` (DVC's copy is the source of truth), for a store that
    was damaged, replaced or moved away since retrain registered it."""
    if version_exists(name, version):
        return str(version)
    print(f"registry: {name} version {version} is not in the MLflow store; registering {model_dir} again")
    expected = integrity.dvc_digests(model_dir, Path.cwd())  # DVC's copy, as DVC recorded it
    if expected is None:
        raise UserError(f"{model_dir}: no {integrity.LOCK_FILE} output holds it, so it is not registered again: "
                        "run `dvc repro`")
    integrity.verify(model_dir, expected, f"{integrity.LOCK_FILE} (through DVC's cache)")
    return register(model_dir, name, {"registered_again_from": model_dir.as_posix()})


def promote(prefix: str, model: str, version: int | None = None, experiment: str | None = None) -> ModelVersion:
    """Make a registered version of `model` the champion; return the champion model's version."""
    return promote_version(prefix, model, find_version(prefix, model, version, experiment))


def logged_model_id(version: ModelVersion) -> str | None:
    """The logged model behind a version, which a tracking server requires of a version made from it.
    A version read through a server has no model_id (MLflow 3.17's client drops it from the reply), but
    its source names it: `models:/<model_id>`."""
    if getattr(version, "model_id", None):
        return version.model_id
    rest = version.source.removeprefix("models:/") if version.source.startswith("models:/") else ""
    return rest if rest and "/" not in rest and "@" not in rest else None


def promote_version(prefix: str, model: str, source: ModelVersion) -> ModelVersion:
    """Point the champion alias at `source`, a version of `<prefix><model>`."""
    client = MlflowClient()
    name = champion_name(prefix)
    try:
        with_retries(lambda: client.create_registered_model(
            name, description="The best model by validation accuracy; its versions point at the winners."))
    except mlflow.exceptions.MlflowException as err:
        if "already exists" not in str(err).lower():
            raise
    tags = {"model": model, "source_model": source.name, "source_version": str(source.version)}
    same = [v for v in client.search_model_versions(f"name='{name}'")
            if v.tags.get("source_model") == source.name and v.tags.get("source_version") == str(source.version)]
    if same:
        champion = same[0]
    else:
        champion = with_retries(lambda: client.create_model_version(
            name, source.source, run_id=source.run_id, tags={**source.tags, **tags}, model_id=logged_model_id(source)))
    with_retries(lambda: client.set_registered_model_alias(name, ALIAS, str(champion.version)))
    record_move(name, str(champion.version))
    return champion


def record_move(name: str, version: str) -> None:
    """Who moved the champion alias, and when: on the version, and as params of the run doing it (if any),
    which stay as logged. Whoever can move the alias can publish a model: this says who did."""
    try:
        who = os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (a container)
        who = f"uid {os.getuid()}"
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    tag_version(name, version, {"imdbclf.promoted_by": who, "imdbclf.promoted_at": when})
    if (run := mlflow.active_run()) is not None:
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # the same move twice in one run
            MlflowClient().log_param(run.info.run_id, f"champion_moved_by.{name}.v{version}", who)
