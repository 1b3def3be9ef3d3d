"""The aclImdb archive (the official URL, a local .tar.gz or a directory in its layout) →
data/raw/{train,test}/{pos,neg}/*.txt and the movie URL lists → one frame of reviews per split (id,
text, label, movie).

Nothing is written to its final place until it is complete: downloads and extractions go to a temp
path first and are renamed at the end, so a failure never leaves half an output behind."""

from __future__ import annotations

import gzip
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from imdbclf import crashpoints
from imdbclf.data.archive import NO_LIMITS, Budget, Limits, check_member, decode_utf8, looks_like_html, write_file
from imdbclf.data.download import download, is_url, redact_url, sha256_of
from imdbclf.errors import UserError

SPLITS = ("train", "test")
CLASSES = ("neg", "pos")  # label 0, label 1
REVIEW = re.compile(r"^(?:.*/)?(train|test)/(pos|neg)/([^/]+\.txt)$")
CLASS_FOLDER = re.compile(r"^(?:.*/)?(train|test)/(pos|neg)/?$")
# Line i of urls_<class>.txt is the IMDB page of the movie that review i (file i_<rating>.txt) is about.
URLS = re.compile(r"^(?:.*/)?(train|test)/(urls_(?:pos|neg)\.txt)$")
MOVIE_ID = re.compile(r"/title/(tt\d+)")


def extract_archive(archive: Path, out: Path, name: str | None = None, limits: Limits = NO_LIMITS) -> int:
    """Copy the labelled reviews of an aclImdb tar.gz into `out/<split>/<class>/`; return the count.
    `name` is what messages call the archive (the URL of a download, not its temp file)."""
    name = name or str(archive)
    count, budget = 0, Budget(limits, name)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tqdm(tar, desc="extract", unit=" files", mininterval=1.0):
                check_member(name, member)
                budget.take(member.name, member.size)  # every member's bytes are unpacked, kept or not
                folder = CLASS_FOLDER.match(member.name)
                if folder and member.isdir():  # so that an empty class folder is reported as such
                    (out / folder[1] / folder[2]).mkdir(parents=True, exist_ok=True)
                match = REVIEW.match(member.name) or URLS.match(member.name)
                if not (match and member.isfile()):
                    continue
                where = f"{name}:{member.name}"
                text = decode_utf8(tar.extractfile(member).read(), where)
                review = len(match.groups()) == 3
                write_file(out, match.groups(), budget.review(text, where) if review else text)
                count += review
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        html = " (the server sent a web page, e.g. an error or login page)" if looks_like_html(archive) else ""
        raise UserError(f"{name}: not a readable gzip tar archive{html} ({err})") from None
    return count


def copy_directory(source: Path, out: Path, limits: Limits = NO_LIMITS) -> int:
    count, budget = 0, Budget(limits, str(source))
    for folder in source.rglob("*"):
        match = CLASS_FOLDER.match(folder.relative_to(source).as_posix())
        if match and folder.is_dir() and not folder.is_symlink():
            (out / match[1] / match[2]).mkdir(parents=True, exist_ok=True)
    for path in tqdm(sorted(source.rglob("*.txt")), desc="copy", unit=" files", mininterval=1.0):
        relative = path.relative_to(source).as_posix()
        match = REVIEW.match(relative) or URLS.match(relative)
        if not match or path.is_symlink():
            continue
        budget.take(relative, path.stat().st_size)
        text = decode_utf8(path.read_bytes(), str(path))
        review = len(match.groups()) == 3
        write_file(out, match.groups(), budget.review(text, str(path)) if review else text)
        count += review
    return count


def check_layout(root: Path, source: str) -> None:
    for split in SPLITS:
        for label in CLASSES:
            folder = root / split / label
            if not folder.is_dir():
                raise UserError(f"{source}: wrong layout: no aclImdb/{split}/{label}/ folder of reviews")
            if not any(folder.iterdir()):
                raise UserError(f"{source}: empty class folder aclImdb/{split}/{label}/")


def fetch_archive(source: str, out: Path, sha256: str | None = None, timeout_s: float = 60.0,
          limits: Limits = NO_LIMITS) -> int:
    """Materialise the labelled reviews of `source` in `out`, atomically; return the review count."""
    out, name = Path(out), redact_url(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}-*"):  # staging left by a fetch that was killed
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp_dir:
        tmp = Path(tmp_dir)
        staged = tmp / "reviews"
        if is_url(source):
            archive = tmp / "archive.tar.gz"
            download(source, archive, timeout_s, limits.download_mb, limits.download_s, limits.download_min_kb_s,
                     limits.rate_window_s)
        else:
            archive = Path(source).expanduser()
            if not archive.exists():
                raise UserError(f"data.source: {source}: no such file or directory")
            if archive.is_dir() and _overlaps(archive, out):
                raise UserError(f"data.source: {source} is the pipeline's own {out} (or holds it): give the "
                                "archive's URL, a .tar.gz or a directory of your reviews")
        if sha256 and archive.is_file():
            actual = sha256_of(archive)
            if actual.lower() != sha256.lower():
                raise UserError(f"{name}: sha256 mismatch: expected {sha256}, got {actual}")
        elif sha256:
            raise UserError(f"data.sha256 is set but {source} is a directory, not an archive")
        if archive.is_dir():
            count = copy_directory(archive, staged, limits)
        else:
            count = extract_archive(archive, staged, name, limits)
        check_layout(staged, name)
        crashpoints.reached("fetch.staged")
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return count


def _overlaps(source: Path, out: Path) -> bool:
    source, out = source.resolve(), out.resolve()
    return source == out or source in out.parents or out in source.parents


def movie_ids(raw: Path, split: str, label: str, required: bool) -> list[str] | None:
    """The IMDB title id (tt…) of each review's movie, by review number; None if there is no list."""
    path = raw / split / f"urls_{label}.txt"
    if not path.exists():
        if required:
            raise UserError(f"{path}: missing: it names each review's movie, which split.group_by: group "
                            "needs (the official archive has it; or set split.group_by: none)")
        return None
    urls = path.read_text(encoding="utf-8").splitlines()
    return [m[1] if (m := MOVIE_ID.search(url)) else url.strip() for url in urls]


SENTIMENTS = {"neg": "negative", "pos": "positive"}  # the class folders and the classes they hold


def rating_of(path: Path) -> int:
    """The star rating in a review's file name, `<id>_<rating>.txt` (1-4 in neg/, 7-10 in pos/)."""
    rating = path.stem.rsplit("_", 1)[-1]
    if "_" not in path.stem or not rating.isdigit() or not 1 <= int(rating) <= 10:
        raise UserError(f"{path}: no star rating in its name (<id>_<rating>.txt, rating 1-10), which "
                        "data.label: rating reads")
    return int(rating)


def read_reviews(raw: Path, split: str, movies_required: bool = False, label: str = "sentiment") -> pd.DataFrame:
    """id, text, label and `movie` (None where the source has no movie lists) of one split's reviews; the
    label is the sentiment (`negative`, `positive`: the class folder) or the star rating in the file name."""
    rows = []
    for folder in CLASSES:
        movies = movie_ids(raw, split, folder, movies_required)
        for path in sorted((raw / split / folder).glob("*.txt")):
            text = decode_utf8(path.read_bytes(), str(path))
            movie = None
            if movies is not None:
                number = int(path.stem.split("_")[0]) if path.stem.split("_")[0].isdigit() else -1
                if not 0 <= number < len(movies):
                    raise UserError(f"{raw / split / f'urls_{folder}.txt'}: no line for review {path.name}")
                movie = movies[number]
            value = SENTIMENTS[folder] if label == "sentiment" else rating_of(path)
            rows.append((f"{split}/{folder}/{path.stem}", text, value, movie))
    return pd.DataFrame(rows, columns=["id", "text", "label", "movie"])
