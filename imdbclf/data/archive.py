"""Safe extraction: only regular files at relative paths inside the archive, never links, and text
that is UTF-8; what an archive member or file is to become is decided by the caller's patterns."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from imdbclf.errors import UserError


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
