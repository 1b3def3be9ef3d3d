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

from imdbclf import failpoints
from imdbclf.errors import UserError

SPLITS = ("train", "test")
CLASSES = ("neg", "pos")  # label 0, label 1
REVIEW = re.compile(r"^(?:.*/)?(train|test)/(pos|neg)/([^/]+\.txt)$")
CLASS_FOLDER = re.compile(r"^(?:.*/)?(train|test)/(pos|neg)/?$")
# Line i of urls_<class>.txt is the IMDB page of the movie that review i (file i_<rating>.txt) is about.
URLS = re.compile(r"^(?:.*/)?(train|test)/(urls_(?:pos|neg)\.txt)$")
MOVIE_ID = re.compile(r"/title/(tt\d+)")


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


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        start = f.read(512).lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _check_member(archive: str, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise UserError(f"{archive}: unsafe path in archive: {member.name!r}")
    if member.issym() or member.islnk():
        raise UserError(f"{archive}: links are not allowed in the archive: {member.name!r}")


def decode_utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _write_file(out: Path, parts: tuple[str, ...], text: str) -> None:
    """A review (split, class, name) or a movie-URL list (split, name), at its place under `out`."""
    target = out.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def extract_archive(archive: Path, out: Path, name: str | None = None) -> int:
    """Copy the labelled reviews of an aclImdb tar.gz into `out/<split>/<class>/`; return the count.
    `name` is what messages call the archive (the URL of a download, not its temp file)."""
    name = name or str(archive)
    count = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tqdm(tar, desc="extract", unit=" files", mininterval=1.0):
                _check_member(name, member)
                folder = CLASS_FOLDER.match(member.name)
                if folder and member.isdir():  # so that an empty class folder is reported as such
                    (out / folder[1] / folder[2]).mkdir(parents=True, exist_ok=True)
                match = REVIEW.match(member.name) or URLS.match(member.name)
                if not (match and member.isfile()):
                    continue
                raw = tar.extractfile(member).read()
                _write_file(out, match.groups(), decode_utf8(raw, f"{name}:{member.name}"))
                count += len(match.groups()) == 3
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        html = " (the server sent a web page, e.g. an error or login page)" if _looks_like_html(archive) else ""
        raise UserError(f"{name}: not a readable gzip tar archive{html} ({err})") from None
    return count


def copy_directory(source: Path, out: Path) -> int:
    count = 0
    for folder in source.rglob("*"):
        match = CLASS_FOLDER.match(folder.relative_to(source).as_posix())
        if match and folder.is_dir() and not folder.is_symlink():
            (out / match[1] / match[2]).mkdir(parents=True, exist_ok=True)
    for path in tqdm(sorted(source.rglob("*.txt")), desc="copy", unit=" files", mininterval=1.0):
        relative = path.relative_to(source).as_posix()
        match = REVIEW.match(relative) or URLS.match(relative)
        if not match or path.is_symlink():
            continue
        _write_file(out, match.groups(), decode_utf8(path.read_bytes(), str(path)))
        count += len(match.groups()) == 3
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
    for stale in out.parent.glob(f".{out.name}-*"):  # staging left by a fetch that was killed
        shutil.rmtree(stale, ignore_errors=True)
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
            count = extract_archive(archive, staged, source)
        check_layout(staged, source)
        failpoints.reached("fetch.staged")
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return count


# ---------------------------------------------------------------- split


def movie_ids(raw: Path, split: str, label: str, required: bool) -> list[str] | None:
    """The IMDB title id (tt…) of each review's movie, by review number; None if there is no list."""
    path = raw / split / f"urls_{label}.txt"
    if not path.exists():
        if required:
            raise UserError(f"{path}: missing: it names each review's movie, which split.group_by: movie "
                            "needs (the official archive has it; or set split.group_by: none)")
        return None
    urls = path.read_text(encoding="utf-8").splitlines()
    return [m[1] if (m := MOVIE_ID.search(url)) else url.strip() for url in urls]


def read_reviews(raw: Path, split: str, movies_required: bool = False) -> pd.DataFrame:
    """id, text, label and `movie` (None where the source has no movie lists) of one split's reviews."""
    rows = []
    for label_id, label in enumerate(CLASSES):
        movies = movie_ids(raw, split, label, movies_required)
        for path in sorted((raw / split / label).glob("*.txt")):
            text = decode_utf8(path.read_bytes(), str(path))
            movie = None
            if movies is not None:
                number = int(path.stem.split("_")[0]) if path.stem.split("_")[0].isdigit() else -1
                if not 0 <= number < len(movies):
                    raise UserError(f"{raw / split / f'urls_{label}.txt'}: no line for review {path.name}")
                movie = movies[number]
            rows.append((f"{split}/{label}/{path.stem}", text, label_id, movie))
    return pd.DataFrame(rows, columns=["id", "text", "label", "movie"])


def stratified_indices(labels: np.ndarray, n: int | None, seed: int, key: str = "sample size") -> np.ndarray:
    """Sorted indices of a class-balanced subsample of size n (all indices when n is None);
    `key` is the params key that set n, for the error a too small n gets."""
    everything = np.arange(len(labels))
    if n is None or n >= len(labels):
        return everything
    if n < len(CLASSES):
        raise UserError(f"params.yaml: {key}: {n} is too small: a stratified sample needs at least one "
                        f"review of each of the {len(CLASSES)} classes")
    sample, _ = train_test_split(everything, train_size=n, stratify=labels, random_state=seed)
    return np.sort(sample)


def stratified_sample(frame: pd.DataFrame, n: int | None, seed: int, key: str = "sample size") -> pd.DataFrame:
    return frame.iloc[stratified_indices(frame["label"].to_numpy(), n, seed, key)].reset_index(drop=True)


def check_both_classes(frame: pd.DataFrame, split: str, key: str, value: object) -> None:
    """Training, early stopping and every metric need reviews of both classes in each split."""
    counts = [int((frame["label"] == label).sum()) for label in range(len(CLASSES))]
    if min(counts) == 0:
        found = ", ".join(f"{n} {name}" for n, name in zip(counts, CLASSES))
        raise UserError(f"params.yaml: {key}: {value} leaves the {split} split with {found} reviews: "
                        "it needs both classes (change the setting or use more data)")


@dataclass(frozen=True)
class Split:
    """Reviews and their labels (0 negative, 1 positive), as the families consume them."""

    name: str
    texts: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    movies: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame) -> Split:
        movies = frame["movie"].to_numpy(dtype=object) if "movie" in frame else None
        return cls(name, frame["text"].to_numpy(dtype=object), frame["label"].to_numpy(dtype=np.int64),
                   frame["id"].to_numpy(dtype=object), movies)

    def subsample(self, n: int | None, seed: int, key: str = "sample size") -> Split:
        keep = stratified_indices(self.labels, n, seed, key)
        ids = None if self.ids is None else self.ids[keep]
        movies = None if self.movies is None else self.movies[keep]
        return Split(self.name, self.texts[keep], self.labels[keep], ids, movies)


def movies_for_validation(frame: pd.DataFrame, val_fraction: float, seed: int) -> set[str]:
    """Whole movies, in a seeded random order, taken while they fit into val_fraction of each class:
    a split stratified by label and grouped by movie, so no movie has reviews on both sides."""
    per_movie = frame.groupby("movie")["label"].agg(["size", "sum"])
    room = val_fraction * np.array([(frame["label"] == 0).sum(), (frame["label"] == 1).sum()])
    taken: set[str] = set()
    for movie in np.random.default_rng(seed).permutation(per_movie.index.to_numpy()):
        size, positive = per_movie.loc[movie]
        need = np.array([size - positive, positive])
        if (need <= room).all():
            taken.add(movie)
            room -= need
    return taken


def split_train_val(train: pd.DataFrame, val_fraction: float, seed: int,
                    group_by: str = "movie") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation split; grouped by movie unless group_by is "none"."""
    if group_by == "movie":
        is_val = train["movie"].isin(movies_for_validation(train, val_fraction, seed))
        fit, val = train[~is_val], train[is_val]
    elif round(val_fraction * len(train)) < len(CLASSES):
        fit, val = train, train.iloc[:0]  # too few for a stratified split: reported below
    elif round((1 - val_fraction) * len(train)) < len(CLASSES):
        fit, val = train.iloc[:0], train
    else:
        fit, val = train_test_split(train, test_size=val_fraction, stratify=train["label"], random_state=seed)
    for name, frame in (("train", fit), ("validation", val)):
        check_both_classes(frame, name, "split.val_fraction", val_fraction)
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
    if all(frame["movie"].notna().all() for frame in splits.values()):
        movies = {name: set(frame["movie"]) for name, frame in splits.items()}
        stats["movies"] = {
            "per_split": {name: len(found) for name, found in movies.items()},
            "shared": {f"{a}-{b}": len(movies[a] & movies[b]) for i, a in enumerate(names) for b in names[i + 1 :]},
        }
    return stats
