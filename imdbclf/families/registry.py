"""Family name → its class, imported lazily so that the TF-free stages and families never
load TensorFlow; creating, validating and loading a family by name."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from imdbclf import environment, integrity, settings
from imdbclf.errors import UserError
from imdbclf.families.base import FAMILY_FILE, Family
from imdbclf.formats import MODEL_NAME
from imdbclf.settings.pipeline import ModelParams

# Each family's name, settings, class and scoring packages are declared once, in `settings.FAMILIES`.
FAMILIES = settings.FAMILIES


def family_module(name: str) -> str:
    """The module of a family (without importing it: the TF-free stages only need its name)."""
    return settings.known_family(name).implementation.split(":")[0]


def family_class(name: str) -> type[Family]:
    module = family_module(name)
    environment.use_legacy_keras()  # before a Keras family's module loads TensorFlow
    imported = importlib.import_module(module)
    return getattr(imported, FAMILIES[name].implementation.split(":")[1])


def create(model_name: str, section: ModelParams) -> Family:
    """A fresh, untrained family for the params section of `model_name`."""
    config = settings.validate(settings.of(section.family).Config, section.model, f"{model_name}.model")
    family = family_class(section.family)(config)
    family.where = f"{model_name}.model"
    return family


def saved_meta(path: Path) -> dict:
    """What a saved model directory records of itself (family, config, class names), read without
    loading the model (or TensorFlow)."""
    path = Path(path)
    if not (path / FAMILY_FILE).exists():
        raise UserError(f"{path}: not a saved model directory (no {FAMILY_FILE})")
    return json.loads((path / FAMILY_FILE).read_text())


def saved_family(path: Path) -> str:
    return saved_meta(path)["family"]


ENSEMBLE = "ensemble"  # a saved ensemble (`imdbclf.ensemble`): members' saved families and their weights
MEMBERS_DIR = "members"  # where a saved ensemble keeps its members' saved models


def scoring_families(meta: dict) -> list[str]:
    """The families whose code scoring a saved model runs: its own, or an ensemble's members'."""
    return sorted(set(meta["member_families"].values())) if meta["family"] == ENSEMBLE else [meta["family"]]


def ensemble_members(path: Path) -> dict[str, str]:
    """A saved ensemble's members (name → family), each checked against the member's own family.json:
    what loading it will load is what it declares (a name is a model name, not a path; no member is an
    ensemble), else a UserError naming the directory."""
    path = Path(path)
    meta = saved_meta(path)
    declared, weights = meta.get("member_families"), meta.get("weights")
    if not isinstance(declared, dict) or not isinstance(weights, dict) or set(declared) != set(weights):
        raise UserError(f"{path}: not a saved ensemble (its {FAMILY_FILE} names no members with their weights)")
    for name, family in declared.items():
        member = path / MEMBERS_DIR / name
        if not MODEL_NAME.fullmatch(name) or family == ENSEMBLE or family not in FAMILIES:
            raise UserError(f"{path}: member {name!r} ({family}) is not a model of a known family")
        if saved_family(member) != family:
            raise UserError(f"{member}: a {saved_family(member)} model, but the ensemble declares {family}")
    return dict(declared)


def loads_only_data(path: Path) -> bool:
    """Whether loading the saved model at `path` can run no code (every family it holds says so)."""
    families = (ensemble_members(path).values() if saved_family(path) == ENSEMBLE else [saved_family(path)])
    return all(family_class(f).loads_only_data for f in families)


def load_verified(path: Path, root: Path, trust: bool = False) -> Family:
    """A saved family of the workspace at `root`, after its files are checked against the md5s DVC
    recorded (`integrity`); one that no dvc.lock output holds is loaded only if its format cannot run
    code, or if `trust` (the user vouches for it)."""
    path = Path(path)
    expected = integrity.dvc_digests(path, root)
    if expected is not None:
        integrity.verify(path, expected, f"{integrity.LOCK_FILE} (through DVC's cache)")
    elif not trust and not loads_only_data(path):
        raise UserError(f"{path}: no {integrity.LOCK_FILE} output holds it, so its files cannot be checked, and a "
                        f"{saved_family(path)} model can run code when loaded: reproduce it with `dvc repro`, or "
                        "vouch for it (--trust)")
    return load_family(path)


def load_family(path: Path) -> Family:
    """A saved family; a directory that is not one, or only part of one, is a UserError naming it."""
    path = Path(path)
    if not (path / FAMILY_FILE).exists():
        raise UserError(f"{path}: not a saved model directory (no {FAMILY_FILE})")
    try:
        meta = json.loads((path / FAMILY_FILE).read_text())
        if meta["family"] == ENSEMBLE:
            from imdbclf.ensemble import Ensemble  # here: the ensemble loads its members through this module

            return Ensemble.load(path)
        cls = family_class(meta["family"])
        family = cls._load(path, cls.Config.model_validate(meta["config"]))
        family.classes = tuple(meta.get("classes", family.classes))  # IMDB's two: saved before classes were
        return family
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - TF, joblib and h5py fail on a damaged file in many types
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: incomplete or damaged saved model ({reason}); save it again") from None
