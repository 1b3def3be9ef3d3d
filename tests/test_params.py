import pytest
import yaml

from devkit.helpers import raises_naming
from imdbclf import families, params, settings


def test_repo_params_are_valid_and_write_out_every_setting():
    """params.yaml holds every setting, defaults included: each section's keys, and each model's tune keys
    (which dvc.yaml tracks one by one, so a missing one would stop `dvc repro`)."""
    path = params.Path(__file__).resolve().parents[1] / "params.yaml"
    p, raw = params.load(path), yaml.safe_load(path.read_text())
    assert p.models and all(p.model(m).family for m in p.models)
    sections = {"data": params.DataParams, "split": params.SplitParams, "tracking": params.TrackingParams,
                "tuning": params.TuningParams, "compute": params.ComputeParams, "evaluate": params.EvaluateParams,
                "report": params.ReportParams, "selection": params.SelectionParams, "sizing": params.SizingParams}
    for name, section in sections.items():
        assert set(section.model_fields) <= set(raw[name]), (name, set(section.model_fields) - set(raw[name]))
    for model in p.models:
        assert set(params.TuneParams.model_fields) <= set(raw[model]["tune"]), model
        schema = settings.of(raw[model]["family"]).Config
        assert set(schema.model_fields) <= set(raw[model]["model"]), (model, set(schema.model_fields) - set(raw[model]))


def test_each_family_record_names_a_class_of_that_name_with_the_records_settings():
    for name, record in settings.FAMILIES.items():
        cls = families.family_class(name)
        assert (cls.name, cls.Config, cls.Hyperparameters) == (name, record.settings.Config,
                                                                record.settings.Hyperparameters)
        assert record.settings.__name__ == f"imdbclf.settings.{name}"


def test_tiny_params_parse(params_dict):
    p = params.parse(params_dict)
    assert p.model("lstm").tune.epochs == 2
    assert p.split.val_fraction == 0.2


@pytest.mark.parametrize(
    "mutate, names",  # the key, and the value at fault where it is not the key itself
    [
        (lambda d: d.update(bogus=1), ["'bogus'"]),
        (lambda d: d["data"].update(colour="red"), ["'data.colour'"]),
        (lambda d: d["lstm"]["model"].update(layers=3), ["'lstm.model.layers'"]),
        (lambda d: d["lstm"]["tune"]["grid"].update(learning_rate=[-0.1]), ["lstm.tune.grid.learning_rate", "-0.1"]),
        (lambda d: d["tracking"].update(run_stale_after_s=10), ["run_stale_after_s", "10"]),
        (lambda d: d["lstm"]["tune"]["grid"].update(batch_size=[0]), ["lstm.tune.grid.batch_size", "0"]),
        (lambda d: d["lstm"]["tune"]["grid"].update(optimizer=["adamax"]), ["lstm.tune.grid.optimizer", "adamax"]),
        (lambda d: d["lstm"].update(family="transformer"), ["lstm.family", "'transformer'"]),
        (lambda d: d.update(models=["tfidf_logreg", "lstm", "lstm"]), ["models:", "lstm"]),
        (lambda d: d["tracking"].update(connect_timeout_s=0), ["tracking.connect_timeout_s", "0"]),
        (lambda d: d.update(models=["lstm", "gpt"]), ["'gpt'"]),
        (lambda d: d["split"].update(val_fraction=1.5), ["split.val_fraction", "1.5"]),
        (lambda d: d["lstm"]["tune"].update(strategy="random"), ["lstm.tune.strategy", "'random'"]),
    ],
)
def test_bad_params_name_the_key(params_dict, mutate, names):
    mutate(params_dict)
    with raises_naming(*names):
        params.parse(params_dict)


def test_missing_file_is_a_user_error(tmp_path):
    with raises_naming(str(tmp_path / "params.yaml"), "not found"):
        params.load(tmp_path / "params.yaml")


def test_floats_as_dvc_writes_them_are_floats(tmp_path):
    """`dvc exp run -S 'lstm.tune.grid.learning_rate=[0.0001,0.00005]'` writes `[0.0001, 5e-05]`: YAML
    1.2 floats, which YAML 1.1 (PyYAML) would read as the string '5e-05'."""
    path = tmp_path / "params.yaml"
    path.write_text("a: [0.0001, 5e-05, 1e12, 3, .5, -2.5E-3]\n")
    assert params.yaml.load(path.read_text(), Loader=params.NoAliasLoader) == {"a": [1e-4, 5e-5, 1e12, 3, 0.5, -2.5e-3]}
