"""`robustgen eval` against a local endpoint with a fixed delay: requests in flight vs --concurrency, and the
driver's peak memory (one batch of images at a time).

    python benchmarks/eval_speed.py [--items 200] [--concurrency 8] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from robustgen.images import encode, load_image  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--delay", type=float, default=0.2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rg-evalbench-"))
    img = cv2.resize(load_image("skimage:coffee"), (256, 192))
    rows = ["index\tquestion\tA\tB\tanswer\timage"]
    for i in range(args.items):
        one = img.copy()
        one[:4, :4] = (i % 256, (i // 256) % 256, 0)  # every image differs: no answer comes from the cache
        b64 = base64.b64encode(encode(one, "png")).decode()
        rows.append(f"{i}\tWhat is in the cup?\tcoffee\ttea\tA\t{b64}")
    (work / "Bench.tsv").write_text("\n".join(rows) + "\n")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "delay_server.py"), str(port), str(args.delay)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        cmd = [sys.executable, "-m", "robustgen.cli", "eval", str(work / "Bench.tsv"), "--out", str(work / "run")]
        cmd += ["--model", "m", "--base-url", url, "--concurrency", str(args.concurrency)]
        env = {**os.environ, "OPENAI_API_KEY": "x"}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        server.terminate()
    requests = args.items * 4
    ideal = requests * args.delay / args.concurrency
    print(f"{args.items} items x 4 levels = {requests} requests, concurrency {args.concurrency}, delay {args.delay}s")
    print(f"wall {wall:.1f}s (includes start-up) vs ideal {ideal:.1f}s: {ideal / wall:.2f} of concurrency/delay")
    print(f"peak RSS of the eval process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
