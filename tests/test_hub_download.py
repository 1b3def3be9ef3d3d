"""The TF Hub download path, offline: a local server stands in for tfhub.dev, which answers a handle with
`?tf-hub-format=compressed` by redirecting (through Kaggle) to a signed storage URL of a .tar.gz."""

import http.server
import io
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from devkit.helpers import splits
from devkit.tiny_hub import write_encoder, write_preprocessor
from imdbclf import families, params
from imdbclf.errors import UserError

SIGNED = "?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature=0123456789abcdef"


def tarball(directory: Path) -> bytes:
    """A SavedModel directory as TF Hub serves it: its files at the archive's root, gzipped."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


class FakeTfHub(http.server.ThreadingHTTPServer):
    """/tfhub/<name> → 302 /kaggle/<name> → 302 /storage/<name>.tar.gz?<signature>, as tfhub.dev does;
    `storage` says how the storage answers: ok, 403 or a tarball cut off halfway."""

    def __init__(self, models: dict[str, bytes]):
        self.models, self.storage, self.requests = models, "ok", []
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/tfhub/{name}/1"


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeTfHub

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.server.requests.append(self.path)
        path, _, query = self.path.partition("?")
        kind, name = path.split("/")[1:3]
        if kind == "tfhub" and query == "tf-hub-format=compressed":
            return self.redirect(f"/kaggle/{name}")
        if kind == "kaggle":
            return self.redirect(f"/storage/{name}.tar.gz{SIGNED}")
        if kind == "storage" and self.server.storage == "403":
            return self.send_error(403, "SignatureDoesNotMatch")
        body = self.server.models.get(name.removesuffix(".tar.gz"))
        if kind != "storage" or body is None:
            return self.send_error(404)
        if self.server.storage == "truncated":
            body = body[: len(body) // 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub-cache"))
    models = {"preprocess": tarball(write_preprocessor(tmp_path / "preprocess")),
              "encoder": tarball(write_encoder(tmp_path / "encoder"))}
    fake = FakeTfHub(models)
    yield fake
    fake.shutdown()
    fake.server_close()


def tiny_bert(params_dict, server: FakeTfHub):
    params_dict["tiny_bert"] = {
        "family": "hub_encoder",
        "model": {"preprocessor": server.handle_url("preprocess"), "encoder": server.handle_url("encoder"),
                  "seq_len": 16},
        "tune": {"epochs": 1, "grid": {"optimizer": ["adamw"], "batch_size": [8], "learning_rate": [0.05]}},
        "retrain": {"epochs": 1},
    }
    if "tiny_bert" not in params_dict["models"]:
        params_dict["models"].append("tiny_bert")
    section = params.parse(params_dict).model("tiny_bert")
    return section, families.create("tiny_bert", section)


def fit(section, family):
    train, val = splits()
    hp = families.hyperparameters("tiny_bert", section, {"optimizer": "adamw", "batch_size": 8,
                                                         "learning_rate": 0.01})
    family.fit(train, val, hp, families.FitOptions(epochs=1, seed=0, verbose=0))
    return family.predict_proba(list(val.texts[:4]))


def test_a_handle_url_is_downloaded_through_the_redirects_cached_and_then_loaded_offline(
        tmp_path, params_dict, server):
    section, family = tiny_bert(params_dict, server)
    first = fit(section, family)
    assert {p.split("?")[0] for p in server.requests} == {
        "/tfhub/preprocess/1", "/kaggle/preprocess", "/storage/preprocess.tar.gz",
        "/tfhub/encoder/1", "/kaggle/encoder", "/storage/encoder.tar.gz"}
    cached = [p for p in (tmp_path / "tfhub-cache").iterdir() if p.is_dir()]
    assert len(cached) == 2 and all((p / "saved_model.pb").is_file() for p in cached)

    server.shutdown()  # nothing answers now: the second family loads both handles from the cache
    server.requests.clear()
    section, family = tiny_bert(params_dict, server)
    second = fit(section, family)
    assert server.requests == []
    np.testing.assert_allclose(second, first, atol=1e-6)


@pytest.mark.parametrize("storage, why", [
    ("403", r"HTTP 403 from 127\.0\.0\.1:\d+/storage/preprocess\.tar\.gz \(tfhub\.dev redirects to Kaggle"),
    ("truncated", r"the download is not a complete model archive"),
])
def test_a_refused_or_cut_off_download_is_one_line_and_caches_nothing(params_dict, server, storage, why):
    server.storage = storage
    section, family = tiny_bert(params_dict, server)
    with pytest.raises(UserError) as err:
        family.make_encoder(np.array([]))
    message = str(err.value)
    assert "\n" not in message and "X-Goog-Signature" not in message
    handle = server.handle_url("preprocess")
    assert message.startswith(f"tiny_bert.model.preprocessor: cannot load TF Hub handle '{handle}' (")
    assert re.search(why, message), message
    assert "Kaggle Models handle" in message and "convert-bert" in message

    server.storage = "ok"  # the failed download left nothing behind that a retry would trip on
    assert families.create("tiny_bert", section).make_encoder(np.array([])) is not None
