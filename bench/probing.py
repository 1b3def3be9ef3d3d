"""The red team's tools (`bench/red_team.py`): a probe run as its own process and measured (exit code, last
line, wall time, peak memory), hostile inputs made on the fly, and a server that drips."""

from __future__ import annotations

import gzip
import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import yaml

from bench.common import free_port

TEXT_MB = 3 << 10  # 3 GB of text: past data.max_unpacked_mb (2048) once unpacked, a few MB packed


def probe(name: str, cmd: list[str] | str, cwd: Path, env: dict | None = None, timeout_s: float = 300,
          expect_ok: bool = False) -> dict:
    """One probe: the command's exit code, last line, wall time and peak RSS (MB)."""
    import psutil

    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, shell=isinstance(cmd, str),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    peak, watched = 0, psutil.Process(proc.pid)
    while proc.poll() is None:  # the process and its children, summed, every 0.1 s
        if time.monotonic() - started > timeout_s:
            proc.kill()
        rss = 0
        for p in [watched, *watched.children(recursive=True)] if proc.poll() is None else []:
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.1)
    reader.join()
    output = "".join(chunks)
    lines = [line for line in output.strip().splitlines() if line.strip()]
    result = {"probe": name, "exit": proc.returncode, "seconds": round(time.monotonic() - started, 1),
              "peak_rss_mb": round(peak / 2**20), "last_line": lines[-1][:300] if lines else "",
              "error_lines": sum(line.startswith("error:") for line in lines),
              "error": next((line[:300] for line in lines if line.startswith("error:")), ""),
              "traceback": "Traceback (most recent call last)" in output}
    result["held"] = (proc.returncode == 0) == expect_ok and not result["traceback"]
    print(f"{'ok ' if result['held'] else 'BAD'} {name}: exit {result['exit']}, {result['seconds']} s, "
          f"{result['peak_rss_mb']} MB: {result['last_line']}", flush=True)
    return result


def params_with(project: Path, **changes) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for key, value in changes.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


class Drip(http.server.ThreadingHTTPServer):
    """Answers every GET with a 200 and then a byte every 2 s, for ever."""

    def __init__(self):
        super().__init__(("127.0.0.1", free_port()), _DripHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class _DripHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(2)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def csv_gz_bomb(path: Path, text_mb: int) -> Path:
    """A gzipped CSV with `text_mb` MB of text in 100,000-character rows (data.max_text_chars)."""
    row = ("x " * 50_000).strip()
    with gzip.open(path, "wt", compresslevel=9) as f:
        f.write("text,label\n")
        for i in range(text_mb * 10):
            f.write(f"{row},{'ab'[i % 2]}\n")
    return path


def parquet_bomb(path: Path, text_mb: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = ("x " * 50_000).strip()
    schema = pa.schema([("text", pa.string()), ("label", pa.string())])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for _ in range(text_mb // 100):  # row groups of 100 MB
            writer.write_table(pa.table({"text": [row] * 1000, "label": ["ab"[i % 2] for i in range(1000)]},
                                        schema=schema))
    return path


class Planted:
    """A pickle that would touch `marker` when loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))
