"""A source URL streamed to a file with a progress bar, and the checksum of a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm import tqdm

from imdbclf.errors import UserError


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
