"""Idle resident memory of the API process (``serve --no-workers``) and of a ``worker``.

Each process starts on a fresh embedded default (SQLite in a temporary data folder), is left
idle for ``--settle`` seconds once it answers (the API) or has logged that it runs (the worker),
and its VmRSS is read from /proc. An API-only process should not load the export stack
(pyarrow, xlsxwriter, ADBC): that is what this watches.

``--code`` compares checkouts in one run (``label=path``: the server runs that checkout's
``src/`` with this environment's packages), alternating them ``--runs`` times:

    .venv/bin/python bench/idle_rss.py --code before=/tmp/before,after=.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
from pathlib import Path

from _harness import (
    CLI,
    HOST,
    REPO_ROOT,
    BenchError,
    code_commit,
    free_port,
    median,
    megabytes,
    parse_code,
    print_header,
    print_table,
    product_env,
    ratio,
    rss_bytes,
    run_main,
    started_process,
)

KINDS = ("api", "worker")


def idle_rss(kind: str, code: Path, settle: float) -> int:
    with tempfile.TemporaryDirectory(prefix="uvm-idle-rss-") as folder:
        data_dir = Path(folder)
        env = product_env(data_dir, f"sqlite:///{data_dir / 'uvm-reporting.sqlite3'}", PYTHONPATH=str(code / "src"))
        port = free_port()
        args = [CLI, "serve", "--no-workers", "--host", HOST, "--port", str(port)] if kind == "api" else [CLI, "worker"]
        with started_process(args, env, f"idle-rss-{kind}") as (process, log_path):
            deadline = time.monotonic() + 60
            while not _ready(kind, port, log_path):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the {kind} process did not come up (see {log_path})")
                time.sleep(0.1)
            time.sleep(settle)
            return rss_bytes(process.pid)


def _ready(kind: str, port: int, log_path: Path) -> bool:
    if kind == "worker":
        return "running" in log_path.read_text(errors="replace")
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="starts per process kind and checkout (default 3)")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before RSS is read (default 3)")
    parser.add_argument("--code", default=f"this={REPO_ROOT}", help="label=path,... checkouts to compare")
    parser.add_argument("--quick", action="store_true", help="smoke check: one start each, 1 s idle")
    args = parser.parse_args()
    runs, settle = (1, 1.0) if args.quick else (args.runs, args.settle)
    codes = parse_code(args.code)
    print_header("idle_rss", f"{runs} start(s) per process and checkout, {settle:g} s idle")
    for label, folder in codes.items():
        print(f"   {label}: {folder} ({code_commit(folder)})")
    samples: dict[tuple[str, str], list[int]] = {(label, kind): [] for label in codes for kind in KINDS}
    for _ in range(runs):
        for label, folder in codes.items():
            for kind in KINDS:
                samples[label, kind].append(idle_rss(kind, folder, settle))
    first = next(iter(codes))
    rows = []
    for kind in KINDS:
        base = median(samples[first, kind])
        for label in codes:
            value = median(samples[label, kind])
            rows.append([kind, label, megabytes(value), ratio(value, base)])
    print_table(f"Idle RSS, medians of {runs} start(s) (MiB)", ["process", "code", "RSS", f"vs {first}"], rows)


if __name__ == "__main__":
    run_main(main)
