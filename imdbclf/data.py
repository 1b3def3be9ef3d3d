"""Source → archive → safe extraction → splits → parquet.

A source is the official URL, a local `.tar.gz` or a local directory in the aclImdb layout. Nothing
is written to its final place until it is complete: downloads and extractions go to a temp path
first and are renamed at the end, so a failure never leaves half an output behind.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from imdbclf.errors import UserError

SPLITS = ("train", "test")
CLASSES = ("neg", "pos")  # label 0, label 1
REVIEW = re.compile(r"^(?:.*/)?(train|test)/(pos|neg)/([^/]+\.txt)$")
CLASS_FOLDER = re.compile(r"^(?:.*/)?(train|test)/(pos|neg)/?$")


# ---------------------------------------------------------------- fetch


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, timeout_s: float) -> None:
    """Stream `url` to `dest` with a progress bar; `dest` appears only when complete."""
    import requests

    tmp = dest.with_name(dest.name + ".part")
    try:
        with requests.get(url, stream=True, timeout=timeout_s) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc="download") as bar:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        tmp.replace(dest)
    except requests.RequestException as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"data.source: cannot download {url}: {type(err).__name__}: {err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise UserError(f"{archive}: unsafe path in archive: {member.name!r}")
    if member.issym() or member.islnk():
        raise UserError(f"{archive}: links are not allowed in the archive: {member.name!r}")


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _write_review(out: Path, split: str, label: str, name: str, text: str) -> None:
    target = out / split / label / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def extract_archive(archive: Path, out: Path) -> int:
    """Copy the labelled reviews of an aclImdb tar.gz into `out/<split>/<class>/`; return the count."""
    count = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tqdm(tar, desc="extract", unit=" files", mininterval=1.0):
                _check_member(archive, member)
                folder = CLASS_FOLDER.match(member.name)
                if folder and member.isdir():  # so that an empty class folder is reported as such
                    (out / folder[1] / folder[2]).mkdir(parents=True, exist_ok=True)
                match = REVIEW.match(member.name)
                if not (match and member.isfile()):
                    continue
                split, label, name = match.groups()
                raw = tar.extractfile(member).read()
                _write_review(out, split, label, name, _decode(raw, f"{archive}:{member.name}"))
                count += 1
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise UserError(f"{archive}: not a readable gzip tar archive ({err})") from None
    return count


def copy_directory(source: Path, out: Path) -> int:
    count = 0
    for folder in source.rglob("*"):
        match = CLASS_FOLDER.match(folder.relative_to(source).as_posix())
        if match and folder.is_dir() and not folder.is_symlink():
            (out / match[1] / match[2]).mkdir(parents=True, exist_ok=True)
    for path in tqdm(sorted(source.rglob("*.txt")), desc="copy", unit=" files", mininterval=1.0):
        match = REVIEW.match(path.relative_to(source).as_posix())
        if not match or path.is_symlink():
            continue
        split, label, name = match.groups()
        _write_review(out, split, label, name, _decode(path.read_bytes(), str(path)))
        count += 1
    return count


def check_layout(root: Path, source: str) -> None:
    for split in SPLITS:
        for label in CLASSES:
            folder = root / split / label
            if not folder.is_dir():
                raise UserError(f"{source}: wrong layout: no aclImdb/{split}/{label}/ folder of reviews")
            if not any(folder.iterdir()):
                raise UserError(f"{source}: empty class folder aclImdb/{split}/{label}/")


def fetch(source: str, out: Path, sha256: str | None = None, timeout_s: float = 60.0) -> int:
    """Materialise the labelled reviews of `source` in `out`, atomically; return the review count."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp_dir:
        tmp = Path(tmp_dir)
        staged = tmp / "reviews"
        if is_url(source):
            archive = tmp / "archive.tar.gz"
            download(source, archive, timeout_s)
        else:
            archive = Path(source).expanduser()
            if not archive.exists():
                raise UserError(f"data.source: {source}: no such file or directory")
        if sha256 and archive.is_file():
            actual = sha256_of(archive)
            if actual.lower() != sha256.lower():
                raise UserError(f"{source}: sha256 mismatch: expected {sha256}, got {actual}")
        elif sha256:
            raise UserError(f"data.sha256 is set but {source} is a directory, not an archive")
        if archive.is_dir():
            count = copy_directory(archive, staged)
        else:
            count = extract_archive(archive, staged)
        check_layout(staged, source)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return count


# ---------------------------------------------------------------- split


def read_reviews(raw: Path, split: str) -> pd.DataFrame:
    rows = []
    for label_id, label in enumerate(CLASSES):
        for path in sorted((raw / split / label).glob("*.txt")):
            text = _decode(path.read_bytes(), str(path))
            rows.append((f"{split}/{label}/{path.stem}", text, label_id))
    return pd.DataFrame(rows, columns=["id", "text", "label"])


def stratified_indices(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subsample of size n (all indices when n is None)."""
    everything = np.arange(len(labels))
    if n is None or n >= len(labels):
        return everything
    sample, _ = train_test_split(everything, train_size=n, stratify=labels, random_state=seed)
    return np.sort(sample)


def stratified_sample(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    return frame.iloc[stratified_indices(frame["label"].to_numpy(), n, seed)].reset_index(drop=True)


@dataclass(frozen=True)
class Split:
    """Reviews and their labels (0 negative, 1 positive), as the families consume them."""

    name: str
    texts: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame) -> Split:
        return cls(name, frame["text"].to_numpy(dtype=object), frame["label"].to_numpy(dtype=np.int64),
                   frame["id"].to_numpy(dtype=object))

    def subsample(self, n: int | None, seed: int) -> Split:
        keep = stratified_indices(self.labels, n, seed)
        ids = None if self.ids is None else self.ids[keep]
        return Split(self.name, self.texts[keep], self.labels[keep], ids)


def split_train_val(train: pd.DataFrame, val_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    fit, val = train_test_split(train, test_size=val_fraction, stratify=train["label"], random_state=seed)
    return fit.sort_values("id").reset_index(drop=True), val.sort_values("id").reset_index(drop=True)


def split_stats(splits: dict[str, pd.DataFrame]) -> dict:
    """Counts, class balance, lengths and exact duplicates (reported, never dropped)."""
    stats: dict = {"splits": {}, "duplicates": {"within": {}, "across": {}}}
    for name, frame in splits.items():
        words = frame["text"].str.split().str.len()
        stats["splits"][name] = {
            "count": int(len(frame)),
            "positive": int(frame["label"].sum()),
            "negative": int((frame["label"] == 0).sum()),
            "positive_fraction": round(float(frame["label"].mean()), 4),
            "words_mean": round(float(words.mean()), 1),
            "words_median": float(np.median(words)),
            "words_p95": float(np.percentile(words, 95)),
            "words_max": int(words.max()),
        }
        stats["duplicates"]["within"][name] = int(frame["text"].duplicated().sum())
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(splits[a]["text"]) & set(splits[b]["text"])
            stats["duplicates"]["across"][f"{a}-{b}"] = len(shared)
    return stats
