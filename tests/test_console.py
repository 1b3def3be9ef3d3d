"""What a user sees: progress off a terminal, the stages' start and end lines, library chatter hidden,
and no TensorFlow where no family needs it (the end-to-end repro checks the stages themselves)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import pytest

from devkit.helpers import NOISE, REPO
from imdbclf.errors import UserError
from imdbclf.ops import console
from imdbclf.ops.stage import stage
from imdbclf.progress import Progress


@pytest.mark.parametrize("total, lines", [(50, 10), (1000, 10), (7, 7), (10, 10), (0, 0)])
def test_progress_off_a_terminal_prints_a_line_every_tenth(total, lines):
    out = io.StringIO()
    with Progress(total, "epoch 1/3", "batch", file=out, tty=False) as progress:
        for _ in range(total):
            progress.update(1, loss=0.5)
    printed = out.getvalue().splitlines()
    assert len(printed) == lines
    if lines:
        assert printed[-1].startswith(f"epoch 1/3: {total}/{total} batches (100%)")
        assert "ETA" in printed[0] and "loss 0.5000" in printed[0]


def test_progress_on_a_terminal_is_a_bar():
    out = io.StringIO()
    with Progress(40, "tokenize train", file=out, tty=True) as progress:
        for _ in range(40):
            progress.update()
    assert "tokenize train" in out.getvalue() and "\r" in out.getvalue()


def test_epoch_progress_prints_about_ten_lines_an_epoch_and_the_metrics():
    from imdbclf.families.keras.callbacks import EpochProgress

    out, err = io.StringIO(), io.StringIO()
    callback = EpochProgress(steps=37, file=err, tty=False, out=out)
    callback.set_params({"epochs": 2, "steps": 37, "verbose": 0})
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for batch in range(37):
            callback.on_train_batch_end(batch, {"loss": 0.69, "accuracy": 0.5})
        callback.on_epoch_end(epoch, {"loss": 0.6, "accuracy": 0.7, "val_loss": 0.65, "val_accuracy": 0.6})
    progress = err.getvalue().splitlines()
    assert len([line for line in progress if line.startswith("epoch 1/2: ")]) == 10
    assert len([line for line in progress if line.startswith("epoch 2/2: ")]) == 10
    assert out.getvalue().splitlines()[0].startswith("epoch 1/2: loss 0.6000, accuracy 0.7000, val_loss 0.6500")


def test_a_stage_prints_a_start_and_an_end_line_with_its_headline(capsys, monkeypatch):
    monkeypatch.setenv(console.VERBOSE_ENV, "1")  # quiet() would change this test process for the next tests

    @stage("tune@{}")
    def main(model):
        print("working")
        return "best val_accuracy 0.9"

    main("lstm")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tune@lstm: started" and lines[1] == "working"
    # the time counts from the process's start (imports included): any duration, however busy the machine
    assert re.fullmatch(r"tune@lstm: done in (\d+\.\d s|\d+ min \d\d s|\d+ h \d\d min|\d+ d \d\d h): "
                        r"best val_accuracy 0\.9", lines[2]), lines[2]


def test_a_failing_stage_prints_its_error_line_not_an_end_line(capsys, monkeypatch):
    monkeypatch.setenv(console.VERBOSE_ENV, "1")

    @stage("fetch")
    def main():
        raise UserError("data.source: no such file")

    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out.splitlines() == ["fetch: started"]
    assert captured.err == "error: data.source: no such file\n"


def test_what_native_code_prints_at_tensorflow_start_up_is_hidden_and_the_rest_kept(tmp_path):
    script = textwrap.dedent("""
        import os
        from imdbclf.ops import console
        with console.quiet_native_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
            os.write(2, b"I0000 00:00:1795813413.252197   24715 port.cc:153] oneDNN custom operations are on.\\n")
            os.write(2, b"E0000 00:00:1795813493.184221   25691 cuda_platform.cc:52] failed call to cuInit\\n")
            os.write(2, b"something else\\n")
        os.write(2, b"after\\n")
    """)
    env = {k: v for k, v in os.environ.items() if k != console.VERBOSE_ENV}
    quiet = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == "something else\nafter\n"
    loud = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**env, console.VERBOSE_ENV: "1"},
                          capture_output=True, text=True)
    assert "oneDNN" in loud.stderr and "cuInit" in loud.stderr


def test_validating_params_and_the_tf_free_stages_import_no_tensorflow(tmp_path):
    """Every family's settings are validated (params.yaml lists all four models) without TensorFlow;
    the stage modules and the TF-IDF family import none either."""
    script = textwrap.dedent("""
        import sys
        import stages.check_params, stages.code, stages.evaluate, stages.fetch, stages.report, stages.retrain
        import stages.split, stages.tune
        from imdbclf import families, params
        p = params.load()
        assert {"lstm", "bert_small", "electra_base"} <= set(p.models), p.models
        families.create("tfidf_logreg", p.model("tfidf_logreg"))
        families.hyperparameters("lstm", p.model("lstm"), {"optimizer": "adamw"})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
        assert not loaded, loaded[:5]
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not NOISE.search(result.stdout + result.stderr), result.stderr


def test_params_and_families_import_each_other_no_more():
    from imdbclf import codedeps

    assert "imdbclf/params.py" not in {p.as_posix() for p in codedeps.closure("imdbclf.families")}
    for family in ("lstm", "hub_encoder", "tfidf_logreg"):  # a family's settings never load a family's model code
        settings = {p.as_posix() for p in codedeps.closure(f"imdbclf.settings.{family}")}
        assert not {s for s in settings if s.startswith("imdbclf/families/keras") or s.endswith("tfidf_logreg.py")
                    and "/settings/" not in s}, settings
