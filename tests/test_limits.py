"""Bounded inputs and one line for each user mistake: what a broken or hostile source, a params file or
a full disk may throw at the pipeline ends in one line naming the problem and a non-zero exit, with
nothing half-written and no secret printed."""

from __future__ import annotations

import contextlib
import copy
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
import yaml

from devkit.helpers import REPO, raises_naming
from devkit.tiny_imdb import write_archive
from imdbclf import atomic, data, params
from imdbclf.errors import exit_on_user_error
from imdbclf.ops import failpoints

LIMITS = data.Limits(download_mb=1, download_s=2, unpacked_mb=4, file_mb=1, text_chars=2000)


@contextlib.contextmanager
def short_line_naming(*names: str) -> Iterator[pytest.ExceptionInfo]:
    """raises_naming, in a short line whatever the input held."""
    with raises_naming(*names) as err:
        yield err
    assert len(str(err.value)) < 400, err.value


def nothing_left(out) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}-*"))


# ---------------------------------------------------------------- params.yaml


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    path = tmp_path / "params.yaml"
    path.write_text(bomb)
    with short_line_naming(str(path), "alias (*a)"):
        params.load(path)


def test_a_params_file_of_megabytes_is_refused_unread(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# " + "x" * (2 << 20) + "\n")
    with short_line_naming(str(path), "2,097,155 bytes", "1,048,576"):  # its size, and the limit
        params.load(path)


@pytest.mark.parametrize("where, value, names", [  # the key (an item of a list by its index), and the bound
    ("split.seed", -1, ["split.seed:", "0", "-1"]),
    ("lstm.retrain.seeds", [-1], ["lstm.retrain.seeds.0:", "0", "-1"]),
    ("lstm.model.vocab_size", 1e12, ["lstm.model.vocab_size:", "2000000"]),
    ("lstm.model.seq_len", 1e9, ["lstm.model.seq_len:", "20000"]),
    ("report.bootstrap_samples", 1e12, ["report.bootstrap_samples:", "100000"]),
    ("lstm.tune.workers", 10_000, ["lstm.tune.workers", "256", "10000"]),
    ("data.source", "", ["data.source:", "1 character"]),
    ("data.source", "  ", ["data.source:", "empty"]),
])
def test_settings_that_would_exhaust_the_machine_are_one_line(params_dict, where, value, names):
    raw = copy.deepcopy(params_dict)
    *parents, key = where.split(".")
    section = raw
    for name in parents:
        section = section.setdefault(name, {})
    section[key] = value
    with short_line_naming(*names):
        params.parse(raw)


# ---------------------------------------------------------------- sources


def test_a_source_that_is_the_pipelines_own_output_is_refused(tmp_path):
    out = tmp_path / "data" / "raw"
    write_archive(tmp_path / "a.tar.gz", 2)
    data.fetch_archive(str(tmp_path / "a.tar.gz"), out)
    for source in (tmp_path, out):  # "" once meant the project itself, which holds data/raw
        with short_line_naming("data.source", str(source), str(out)):
            data.fetch_archive(str(source), out)


def bomb_archive(path, size: int):
    """One member of `size` zero bytes: a few kB gzipped."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("aclImdb/train/pos/0_9.txt")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_an_archive_member_past_the_file_limit_is_refused_before_it_is_read(tmp_path):
    archive = bomb_archive(tmp_path / "bomb.tar.gz", 3 << 20)
    assert archive.stat().st_size < 64 << 10
    with short_line_naming(str(archive), "aclImdb/train/pos/0_9.txt", "3.0 MB", "data.max_file_mb (1)"):
        data.fetch_archive(str(archive), tmp_path / "raw", limits=LIMITS)
    assert nothing_left(tmp_path / "raw")


def test_an_archive_past_the_unpacked_limit_is_refused(tmp_path):
    extra = {f"aclImdb/unsup/{i}_0.txt": bytes(900 << 10) for i in range(6)}  # skipped, but unpacked all the same
    archive = write_archive(tmp_path / "big.tar.gz", 2, extra=extra)
    with short_line_naming(str(archive), "data.max_unpacked_mb (4)", "aclImdb/unsup/"):
        data.fetch_archive(str(archive), tmp_path / "raw", limits=LIMITS)
    assert nothing_left(tmp_path / "raw")


@pytest.mark.parametrize("kind", ["archive", "directory"])
def test_a_review_past_the_length_limit_is_refused(tmp_path, kind):
    long = "a long review " * 200
    archive = write_archive(tmp_path / "a.tar.gz", 2, extra={"aclImdb/train/neg/99_1.txt": long.encode()})
    source = archive
    if kind == "directory":
        source = tmp_path / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(source, filter="data")
    with short_line_naming("train/neg/99_1.txt", "2,800", "data.max_text_chars (2,000)"):
        data.fetch_archive(str(source), tmp_path / "raw", limits=LIMITS)
    assert nothing_left(tmp_path / "raw")


class Serve(http.server.ThreadingHTTPServer):
    """Answers every GET as `answer` says: endless (zeros without end), drip (a byte per 0.2 s), big
    (a Content-Length of 5 GB)."""

    def __init__(self, answer: str):
        self.answer = answer
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.server_address[1]}/aclImdb_v1.tar.gz"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.send_response(200)
        if self.server.answer == "big":
            self.send_header("Content-Length", str(5 << 30))
        self.end_headers()
        try:
            while True:
                self.wfile.write(bytes(64 << 10) if self.server.answer != "drip" else b"\0")
                self.wfile.flush()
                if self.server.answer == "drip":
                    time.sleep(0.2)
                if self.server.answer == "big":
                    return
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("answer, names", [  # the limit it passed, and how far where the server said so
    ("endless", ["data.max_download_mb (1)"]),
    ("drip", ["data.max_download_s (2 s)"]),
    ("big", ["5,120 MB", "data.max_download_mb (1)"]),
])
def test_a_download_without_end_or_that_drips_is_stopped_and_names_no_password(tmp_path, answer, names):
    server = Serve(answer)
    try:
        with short_line_naming(f"data.source: {server.url()}", *names) as err:
            data.fetch_archive(server.url("alice:s3cret@"), tmp_path / "raw", timeout_s=30, limits=LIMITS)
    finally:
        server.shutdown()
        server.server_close()
    assert "s3cret" not in str(err.value) and "alice" not in str(err.value)
    assert nothing_left(tmp_path / "raw") and not list(tmp_path.rglob("*.part"))


def test_a_source_that_drips_is_stopped_by_its_rate_long_before_the_total_time(tmp_path):
    """A byte per 0.2 s never lets a read time out; the rate over each window (1 s) is far below 10 kB/s."""
    server = Serve("drip")
    try:
        with short_line_naming(f"data.source: {server.url()}", "data.min_download_kb_s (10)"):
            data.fetch_archive(server.url(), tmp_path / "raw", timeout_s=1,
                       limits=data.Limits(download_s=3600, download_min_kb_s=10, rate_window_s=1))
    finally:
        server.shutdown()
        server.server_close()
    assert nothing_left(tmp_path / "raw") and not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("key", ["source", "test_source"])
def test_a_source_url_with_a_login_is_refused_before_it_reaches_dvc_lock(key):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"][key] = "https://alice:s3cret@example.org/texts.csv"
    with short_line_naming(f"data.{key}", "netrc") as err:
        params.parse(raw)
    assert "s3cret" not in str(err.value)


def test_a_url_is_shown_without_its_password():
    assert data.redact_url("https://alice:s3cret@example.org:8443/a.tar.gz?x=1") == "https://example.org:8443/a.tar.gz?x=1"
    assert data.redact_url("https://example.org/a.tar.gz") == "https://example.org/a.tar.gz"
    assert data.redact_url("/data/aclImdb") == "/data/aclImdb"


# ---------------------------------------------------------------- a full disk, a symlink loop


def test_a_full_disk_during_a_write_leaves_the_old_file_and_says_so_in_one_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic.write_json(path, {"old": 1})
    monkeypatch.setenv(failpoints.DISK_FULL_AT, "write:metrics.json")
    failpoints.arm()
    with short_line_naming(str(path), "no space left on device"):
        atomic.write_json(path, {"new": 2})
    assert path.read_text() == '{\n  "old": 1\n}\n' and os.listdir(tmp_path) == ["metrics.json"]


def test_a_full_disk_deep_in_a_library_is_one_line_through_the_exceptions_it_caused(capsys):
    @exit_on_user_error
    def main():
        try:
            raise OSError(28, "No space left on device", "mlruns/0/meta.yaml")
        except OSError as err:
            raise RuntimeError("could not log the run") from err

    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one error line, naming the fault and the file
    assert "no space left on device" in err and "mlruns/0/meta.yaml" in err, err


def cli(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DVC_ROOT", None)
    return subprocess.run([sys.executable, "-m", "imdbclf", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_a_fetch_on_a_full_disk_exits_in_one_line_and_leaves_no_data(tmp_path, params_dict):
    project = tmp_path / "project"
    project.mkdir()
    write_archive(tmp_path / "a.tar.gz", 2)
    params_dict["data"]["source"] = str(tmp_path / "a.tar.gz")
    (project / "params.yaml").write_text(yaml.safe_dump(params_dict))
    env = {**os.environ, "PYTHONPATH": str(REPO), failpoints.DISK_FULL_AT: "fetch.staged",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("DVC_ROOT", None)
    done = subprocess.run([sys.executable, "-m", "stages.fetch"], cwd=project, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: no space left on device"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert nothing_left(project / "data" / "raw")


def test_predict_on_a_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    done = cli("predict", "--model", str(tmp_path / "loop"), "great film", cwd=tmp_path)
    assert done.returncode == 2
    loop = tmp_path / "loop"
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert all(name in done.stderr for name in (f"--model {loop}", "Symlink loop")), done.stderr


# ---------------------------------------------------------------- tables that unpack past their limit


def table_data(params_dict, source, **settings):
    from devkit.tiny_tables import table_params

    return params.parse(table_params(params_dict, source, **settings)).data


def big_tickets(text_mb: int):
    from devkit.tiny_tables import tickets

    frame = tickets(4)
    return frame.assign(text=[t + " " + "x" * (text_mb << 20) if i == 0 else t for i, t in enumerate(frame["text"])])


def test_a_gzipped_table_is_read_and_one_that_unpacks_past_the_limit_stops_in_one_line(tmp_path, params_dict):
    import gzip

    from devkit.tiny_tables import tickets

    small = tmp_path / "small.csv.gz"
    small.write_bytes(gzip.compress(tickets(4).to_csv(index=False).encode()))
    assert data.sources.fetch(table_data(params_dict, small), tmp_path / "raw") == 12
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(big_tickets(8).to_csv(index=False).encode()))
    assert bomb.stat().st_size < (1 << 20)  # under the limit as a file, 8 MB unpacked
    with short_line_naming("bomb.csv.gz", "data.max_unpacked_mb (4)"):
        data.sources.fetch(table_data(params_dict, bomb, max_unpacked_mb=4, max_text_chars=10 << 20),
                           tmp_path / "raw2")
    assert not (tmp_path / "raw2").exists()


def test_a_damaged_gzip_table_is_one_line(tmp_path, params_dict):
    import gzip

    from devkit.tiny_tables import tickets

    damaged = tmp_path / "damaged.csv.gz"
    packed = bytearray(gzip.compress(tickets(4).to_csv(index=False).encode() * 50))
    packed[len(packed) // 2: len(packed) // 2 + 64] = bytes(64)
    damaged.write_bytes(bytes(packed))
    with short_line_naming("damaged.csv.gz", "compressed file"):
        data.sources.fetch(table_data(params_dict, damaged), tmp_path / "raw")


def test_a_parquet_table_whose_columns_unpack_past_the_limit_stops_before_it_is_read(tmp_path, params_dict):
    bomb = tmp_path / "bomb.parquet"
    big_tickets(8).to_parquet(bomb, compression="zstd")
    assert bomb.stat().st_size < (1 << 20)
    with short_line_naming("bomb.parquet", "data.max_unpacked_mb (4)"):
        data.sources.fetch(table_data(params_dict, bomb, max_unpacked_mb=4, max_text_chars=10 << 20),
                           tmp_path / "raw")


def test_a_parquet_table_of_one_text_repeated_counts_every_row(tmp_path, params_dict):
    """Dictionary encoding stores a repeated text once: the file and its footer say kilobytes, the rows
    hold 10 MB. Counted row by row (still dictionary-encoded), it is refused before it is expanded."""
    from devkit.tiny_tables import tickets

    frame = pd.concat([tickets(4)] * 100, ignore_index=True).assign(text="y " * 50_000)
    frame["ticket"] = [f"t{i}" for i in range(len(frame))]
    bomb = tmp_path / "repeated.parquet"
    frame.to_parquet(bomb, compression="zstd")
    assert bomb.stat().st_size < (100 << 10)
    with short_line_naming("repeated.parquet", "data.max_unpacked_mb (4)"):
        data.sources.fetch(table_data(params_dict, bomb, max_unpacked_mb=4), tmp_path / "raw")


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_a_nested_text_or_label_is_refused_not_read_as_its_repr(tmp_path, params_dict, suffix):
    from devkit.tiny_tables import tickets, write_table

    frame = tickets(4)
    frame["topic"] = [[t] for t in frame["topic"]]  # a list where a label belongs
    source = write_table(tmp_path / f"nested{suffix}", frame)
    with short_line_naming(source.name, "'topic'", "nested"):
        data.sources.fetch(table_data(params_dict, source), tmp_path / "raw")
