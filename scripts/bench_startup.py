"""Time `triage serve` from launch to its first ready answer on /readyz (median of several starts).

Run it after one start has trained the models and built the index in the data folder, so it times a restart:

    .venv/bin/python scripts/bench_startup.py --data-dir data --runs 5

`--cwd` and `--module` time another checkout with the same interpreter (its modules come first on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_start(module: str, data_dir: str, cwd: str, timeout: float) -> float:
    port = free_port()
    cmd = [sys.executable, "-m", module, "serve", "--port", str(port), "--data-dir", data_dir]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"not ready within {timeout:.0f}s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a data folder with trained models and an index")
    parser.add_argument("--runs", type=int, default=5, help="number of starts (default 5)")
    parser.add_argument("--cwd", default=".", help="the checkout to run (default: this one)")
    parser.add_argument("--module", default="agents.cli.main", help="the CLI module of that checkout")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one start")
    args = parser.parse_args()
    data_dir = os.path.abspath(args.data_dir)
    seconds = [one_start(args.module, data_dir, args.cwd, args.timeout) for _ in range(args.runs)]
    print(json.dumps({"cwd": os.path.abspath(args.cwd), "runs": [round(s, 2) for s in seconds],
                      "median_s": round(statistics.median(seconds), 2)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
