import io
import tarfile

import pandas as pd
import pytest

from devkit.helpers import labelled, raises_naming
from devkit.tiny_imdb import write_archive, write_tree
from imdbclf import data


def test_fetch_archive_keeps_labelled_reviews_only(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", 5, extra={"aclImdb/train/unsup/0_0.txt": b"no label"})
    out = tmp_path / "raw"
    assert data.fetch_archive(str(archive), out) == 20
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    assert sorted(p.name for p in (out / "train").iterdir()) == ["neg", "pos", "urls_neg.txt", "urls_pos.txt"]
    assert len(list((out / "test" / "pos").glob("*.txt"))) == 5


def test_fetch_directory_and_checksum(tmp_path):
    tree = write_tree(tmp_path / "src", 3)
    assert data.fetch_archive(str(tree), tmp_path / "raw") == 12
    archive = write_archive(tmp_path / "a.tar.gz", 3)
    digest = data.sha256_of(archive)
    assert data.fetch_archive(str(archive), tmp_path / "raw2", sha256=digest) == 12


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _file(name, payload=b"text"):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


@pytest.mark.parametrize(
    "make, names",  # the archive, what is wrong with it, and the member or folder at fault
    [
        (lambda p: p.write_bytes(b"plain text, not gzip"), ["gzip tar"]),
        (lambda p: _tar(p, [_file("../evil.txt")]), ["unsafe path", "'../evil.txt'"]),
        (lambda p: _tar(p, [_file("/etc/evil.txt")]), ["unsafe path", "'/etc/evil.txt'"]),
        (lambda p: _tar(p, [_link("aclImdb/train/pos/1_9.txt", "/etc/passwd")]),
         ["links are not allowed", "'aclImdb/train/pos/1_9.txt'"]),
        (lambda p: _tar(p, [_file("aclImdb/train/pos/1_9.txt")]), ["wrong layout", "aclImdb/train/neg/"]),
        (lambda p: _tar(p, [_file(f"aclImdb/{s}/{c}/1_9.txt") for s in ("train", "test") for c in ("pos", "neg")
                            if (s, c) != ("test", "neg")] + [(_dir("aclImdb/test/neg"))]),
         ["empty class folder", "aclImdb/test/neg/"]),
        (lambda p: write_archive(p, 2, extra={"aclImdb/train/pos/99_9.txt": b"\xff\xfe bad"}),
         ["UTF-8", "aclImdb/train/pos/99_9.txt", "byte 0"]),
    ],
)
def test_bad_archives_fail_cleanly(tmp_path, make, names):
    archive = tmp_path / "bad.tar.gz"
    make(archive)
    out = tmp_path / "raw"
    with raises_naming(str(archive), *names):
        data.fetch_archive(str(archive), out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"]  # no temp leftovers


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def test_checksum_mismatch_and_missing_source(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", 2)
    with raises_naming(str(archive), "sha256", "0" * 64, data.sha256_of(archive)):  # expected and actual
        data.fetch_archive(str(archive), tmp_path / "raw", sha256="0" * 64)
    with raises_naming("data.source", str(tmp_path / "missing.tar.gz"), "no such file"):
        data.fetch_archive(str(tmp_path / "missing.tar.gz"), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_unreachable_url_is_a_user_error(tmp_path):
    with raises_naming("data.source", "http://127.0.0.1:9/aclImdb_v1.tar.gz"):
        data.fetch_archive("http://127.0.0.1:9/aclImdb_v1.tar.gz", tmp_path / "raw", timeout_s=2)
    assert not (tmp_path / "raw").exists()


def test_split_is_stratified_and_reports_duplicates(tmp_path):
    write_tree(tmp_path / "src", 20)
    data.fetch_archive(str(tmp_path / "src"), tmp_path / "raw")
    train = labelled(tmp_path / "raw", "train")
    test = labelled(tmp_path / "raw", "test")
    fit, val = data.split_train_val(train, 0.25, seed=1, group_by="none")
    assert len(fit) == 30 and len(val) == 10
    assert fit["label"].sum() == 15 and val["label"].sum() == 5
    assert not set(fit["id"]) & set(val["id"])
    test = pd.concat([test, fit.iloc[:2]], ignore_index=True)  # two train reviews leak into test
    stats = data.split_stats({"train": fit, "val": val, "test": test})
    assert stats["duplicates"]["across"]["train-test"] >= 2
    assert stats["splits"]["val"]["positive_fraction"] == 0.5


def test_stratified_subsample_keeps_balance():
    labels = pd.Series([0] * 50 + [1] * 50).to_numpy()
    keep = data.stratified_indices(labels, 10, seed=0)
    assert len(keep) == 10 and labels[keep].sum() == 5


def test_split_by_movie_keeps_each_movie_on_one_side(tmp_path):
    write_tree(tmp_path / "src", 30)
    data.fetch_archive(str(tmp_path / "src"), tmp_path / "raw")
    train = labelled(tmp_path / "raw", "train", movies_required=True)
    assert train["movie"].nunique() == 10  # three reviews of each class per movie
    fit, val = data.split_train_val(train, 0.2, seed=3)
    assert not set(fit["movie"]) & set(val["movie"])
    assert len(val) == 12 and val["label"].sum() == 6  # two whole movies: stratified as well
    stats = data.split_stats({"train": fit, "val": val, "test": labelled(tmp_path / "raw", "test")})
    assert stats["movies"]["shared"] == {"train-val": 0, "train-test": 0, "val-test": 0}
    assert stats["movies"]["per_split"] == {"train": 8, "val": 2, "test": 10}
    random_fit, random_val = data.split_train_val(train, 0.2, seed=3, group_by="none")
    assert set(random_fit["movie"]) & set(random_val["movie"])  # what grouping prevents


def test_a_source_without_movie_lists_needs_group_by_none(tmp_path):
    write_tree(tmp_path / "src", 4, movies=False)
    data.fetch_archive(str(tmp_path / "src"), tmp_path / "raw")
    with raises_naming(str(tmp_path / "raw" / "train" / "urls_neg.txt"), "split.group_by: none"):
        labelled(tmp_path / "raw", "train", movies_required=True)
    assert data.read_reviews(tmp_path / "raw", "train")["movie"].isna().all()


def test_too_small_splits_name_the_key(tmp_path):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(20)], "text": ["t"] * 20, "label": [0, 1] * 10,
                          "movie": [f"m{i}" for i in range(20)]})
    with raises_naming("split.max_train", "1"):
        data.stratified_sample(frame, 1, 0, "split.max_train")
    with raises_naming("split.val_fraction", "0.01", "validation"):
        data.split_train_val(frame, 0.01, 0, "none")
    with raises_naming("'movie'", "20 group", "train split", "split.val_fraction", "0.01"):
        data.split_train_val(frame, 0.01, 0, "movie")
    split = data.Split.from_frame("train", frame)
    with raises_naming("lstm.tune.max_train", "1"):
        split.subsample(1, 0, "lstm.tune.max_train")


def test_a_web_page_instead_of_the_archive_names_the_url(tmp_path):
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz"
    try:
        with raises_naming(url, "gzip tar", "web page"):  # what it is not, and what came instead
            data.fetch_archive(url, tmp_path / "raw", timeout_s=5)
    finally:
        server.shutdown()
    assert not (tmp_path / "raw").exists() and not list(tmp_path.glob(".raw-*"))


def test_staging_left_by_a_killed_fetch_is_removed(tmp_path):
    stale = tmp_path / ".raw-abc123"
    (stale / "reviews" / "train").mkdir(parents=True)
    archive = write_archive(tmp_path / "a.tar.gz", 2)
    data.fetch_archive(str(archive), tmp_path / "raw")
    assert not stale.exists() and (tmp_path / "raw" / "train").is_dir()
