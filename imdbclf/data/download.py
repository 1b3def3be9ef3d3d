"""A source URL streamed to a file with a progress bar, within a size and a time limit; the checksum of
a file; a URL as it may be printed or logged (without the password it may carry)."""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from pathlib import Path

from tqdm import tqdm

from imdbclf.errors import UserError

MB = 1 << 20


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def redact_url(source: str) -> str:
    """`source` with any user:password@ of a URL removed: what errors and MLflow params may contain."""
    if not is_url(source):
        return source
    parts = urllib.parse.urlsplit(source)
    if parts.username is None and parts.password is None:
        return source
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, timeout_s: float, max_mb: float | None = None,
             max_s: float | None = None, min_kb_s: float | None = None, window_s: float = 30.0) -> None:
    """Stream `url` to `dest` with a progress bar; `dest` appears only when complete. `timeout_s` bounds
    each read; `max_mb` and `max_s` the whole download (a body without end); `min_kb_s` its rate over
    each `window_s` (a server sending a byte now and then, never silent long enough for a read to time
    out): past any, it stops in one line and leaves nothing. A login comes from ~/.netrc (requests)."""
    import requests

    name, tmp = redact_url(url), dest.with_name(dest.name + ".part")
    started = time.monotonic()
    window_start, window_bytes = started, 0
    try:
        with requests.get(url, stream=True, timeout=timeout_s) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            if max_mb and total and total > max_mb * MB:
                raise UserError(f"data.source: {name} is {total / MB:,.0f} MB, more than data.max_download_mb "
                                f"({max_mb:g})")
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc="download") as bar:
                # read1: whatever has arrived (at most 1 MB), so that the limits are checked between reads
                while chunk := response.raw.read1(MB, decode_content=True):
                    f.write(chunk)
                    bar.update(len(chunk))
                    if max_mb and bar.n > max_mb * MB:
                        raise UserError(f"data.source: {name}: the download passed data.max_download_mb "
                                        f"({max_mb:g}) and was stopped")
                    now = time.monotonic()
                    if max_s and now - started > max_s:
                        raise UserError(f"data.source: {name}: the download took longer than "
                                        f"data.max_download_s ({max_s:g} s) and was stopped, at {bar.n / MB:,.1f} MB")
                    window_bytes += len(chunk)
                    if now - window_start >= window_s:
                        rate = window_bytes / 1024 / (now - window_start)
                        if min_kb_s and rate < min_kb_s:
                            raise UserError(f"data.source: {name}: {rate:.2g} kB/s over the last "
                                            f"{now - window_start:.0f} s, below data.min_download_kb_s "
                                            f"({min_kb_s:g}); stopped at {bar.n / MB:,.1f} MB")
                        window_start, window_bytes = now, 0
        tmp.replace(dest)
    except requests.RequestException as err:
        tmp.unlink(missing_ok=True)
        reason = str(err).replace(url, name)
        raise UserError(f"data.source: cannot download {name}: {type(err).__name__}: {reason}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
