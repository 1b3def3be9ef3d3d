"""fetch + split on the real archive beside the repo (skipped where it is absent)."""

import pytest

from devkit.helpers import REPO, labelled
from imdbclf import data

pytestmark = pytest.mark.slow  # the real archive

ARCHIVE = REPO.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"


@pytest.mark.skipif(not ARCHIVE.exists(), reason=f"{ARCHIVE} not present")
def test_real_archive_fetch_and_split(tmp_path):
    raw = tmp_path / "raw"
    assert data.fetch_archive(str(ARCHIVE), raw) == 50_000
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            assert len(list((raw / split / label).glob("*.txt"))) == 12_500
    train = labelled(raw, "train", movies_required=True)
    fit, val = data.split_train_val(train, 0.2, seed=42)
    assert (len(fit), len(val)) == (20_000, 5_000)
    assert fit["label"].sum() == 10_000 and val["label"].sum() == 2_500
    stats = data.split_stats({"train": fit, "val": val, "test": labelled(raw, "test", True)})
    assert stats["movies"]["shared"]["train-val"] == 0
    assert stats["movies"]["per_split"]["val"] > 500
    assert stats["splits"]["test"]["count"] == 25_000
    assert stats["duplicates"]["within"]["train"] > 0  # IMDB has exact duplicates: reported, not dropped
