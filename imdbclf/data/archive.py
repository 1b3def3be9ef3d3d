"""Safe extraction: only regular files at relative paths inside the archive, never links, and text
that is UTF-8; what an archive member or file is to become is decided by the caller's patterns."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imdbclf.errors import UserError

MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How much a source may hold (params.yaml's data.max_*): a broken or hostile archive stops in one
    line long before the machine's memory or disk does. None: no limit."""

    download_mb: float | None = None
    download_s: float | None = None
    download_min_kb_s: float | None = None
    rate_window_s: float = 30.0
    unpacked_mb: float | None = None
    file_mb: float | None = None
    text_chars: int | None = None

    @classmethod
    def of(cls, settings) -> Limits:
        """From params.yaml's `data:` section (its max_* keys)."""
        return cls(download_mb=settings.max_download_mb, download_s=settings.max_download_s,
                   download_min_kb_s=settings.min_download_kb_s or None, rate_window_s=settings.rate_window_s,
                   unpacked_mb=settings.max_unpacked_mb, file_mb=settings.max_file_mb,
                   text_chars=settings.max_text_chars)


NO_LIMITS = Limits()


class Budget:
    """Counts the bytes of a source's files as they are read, against `Limits`."""

    def __init__(self, limits: Limits, source: str):
        self.limits, self.source, self.unpacked = limits, source, 0

    def take(self, name: str, size: int) -> None:
        """Before reading a file of `size` bytes."""
        file_mb, unpacked_mb = self.limits.file_mb, self.limits.unpacked_mb
        if file_mb and size > file_mb * MB:
            raise UserError(f"{self.source}: {name} is {size / MB:,.1f} MB unpacked, more than data.max_file_mb "
                            f"({file_mb:g})")
        self.unpacked += size
        if unpacked_mb and self.unpacked > unpacked_mb * MB:
            raise UserError(f"{self.source}: more than data.max_unpacked_mb ({unpacked_mb:g}) unpacked, at {name}")

    def review(self, text: str, where: str) -> str:
        if self.limits.text_chars and len(text) > self.limits.text_chars:
            raise UserError(f"{where}: a review of {len(text):,} characters, more than data.max_text_chars "
                            f"({self.limits.text_chars:,})")
        return text


def looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        start = f.read(512).lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def check_member(archive: str, member: tarfile.TarInfo) -> None:
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


def write_file(out: Path, parts: tuple[str, ...], text: str) -> None:
    """A review (split, class, name) or a movie-URL list (split, name), at its place under `out`."""
    target = out.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
