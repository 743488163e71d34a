"""Throughput of `robustgen synth` against a bare 2-process loop, and of the teacher stage against an
endpoint with a fixed delay. Run on demand (not in CI):

    python benchmarks/pipeline.py [--samples 2000] [--side 512] [--delay 0.2] [--concurrency 8]

1. template teacher, --workers 2, N samples, vs a bare multiprocessing loop (2 processes) doing the same
   decode -> plan -> degrade -> JPEG encode -> write; target >= 85% of the bare loop.
2. openai teacher against a local server that answers after a fixed delay; target >= 90% of
   concurrency / delay samples per second.
3. peak RSS of the driver for N/4 and N samples (it must not grow with the dataset).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
LAST_START = 0.0
sys.path.insert(0, str(ROOT))

from robustgen.images import load_image, write_image  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def make_source(folder: Path, n: int, side: int) -> Path:
    for name in PHOTOS:
        write_image(folder / f"{name}.jpg", cv2.resize(load_image(f"skimage:{name}"), (side, side)))
    rows = [
        {
            "id": f"s{i:06d}",
            "image": f"{PHOTOS[i % len(PHOTOS)]}.jpg",
            "question": f"What is shown in #{i}?",
            "answer": "1",
            "choices": ["a", "b", "c"],
            "rationale": "The photo shows it.",
        }
        for i in range(n)
    ]
    p = folder / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _bare_one(args):
    import robustgen as rg
    from robustgen.images import encode, read_image
    from robustgen.pipelines.output import image_relpath

    row, root, out = args
    img = read_image(Path(root) / row["image"])
    plan = _RECIPE.sample(seed=0, sample_id=row["id"])
    degraded = rg.apply_plan(img, plan)[0]
    target = Path(out) / image_relpath(row["id"], "jpg")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode(degraded, "jpg"))


def _init():
    global _RECIPE
    cv2.setNumThreads(1)
    import robustgen as rg

    _RECIPE = rg.Recipe()


def bare_loop(src: Path, out: Path) -> float:
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(2, initializer=_init) as pool:
        for _ in pool.imap_unordered(_bare_one, [(r, str(src.parent), str(out)) for r in rows], chunksize=16):
            pass
    return time.perf_counter() - t0


def run_synth(args: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """(wall seconds, seconds the manifest reports, driver peak RSS in MB); the command's start time is kept in
    ``LAST_START`` (for the time to the first image written)."""
    global LAST_START
    script = (
        "import resource, sys, json\n"
        "from robustgen.cli import app\n"
        "try:\n    app(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n    print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    t0 = time.perf_counter()
    LAST_START = time.time()
    res = subprocess.run(
        [sys.executable, "-c", script, "synth", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 3):
        raise SystemExit(res.stderr[-3000:])
    rss = int(res.stderr.split("PEAK_RSS_KB")[-1].split()[0]) // 1024
    out = Path(args[args.index("--out") + 1])
    seconds = json.loads((out / "manifest.json").read_text())["timings"]["seconds"]
    return wall, seconds, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--teacher-samples", type=int, default=400)
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_source(tmp / "src", args.samples, args.side)
        bare = bare_loop(src, tmp / "bare")
        wall, inner, rss_full = run_synth(["--out", str(tmp / "synth"), "--source", str(src), "--workers", "2"])
        n = args.samples
        stamps = sorted(p.stat().st_mtime for p in (tmp / "synth" / "images").rglob("*.jpg"))
        steady = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)
        first_image = stamps[0] - LAST_START
        timings = json.loads((tmp / "synth" / "manifest.json").read_text())["timings"]
        lines.append(
            f"| synth, template teacher, {n} samples at {args.side}px | {n / wall:.1f} samples/s "
            f"(wall {wall:.1f}s, {n / inner:.1f}/s inside the job) |"
        )
        lines.append(
            f"| bare 2-process loop (decode, degrade, encode, write) | {n / bare:.1f} samples/s ({bare:.1f}s) |"
        )
        lines.append(f"| synth steady state (first to last image written) | {steady:.1f} samples/s |")
        lines.append(f"| command start to first image written | {first_image:.2f} s |")
        lines.append(
            f"| rows processed by the driver / by Ray tasks | {timings['rows_in_driver']} / {timings['rows_on_ray']} |"
        )
        lines.append(
            f"| synth / bare | {bare / wall:.2f} (wall) / {bare / inner:.2f} (job) / {steady * bare / n:.2f} (steady) |"
        )

        quarter = make_source(tmp / "src4", n // 4, args.side)
        _, _, rss_quarter = run_synth(["--out", str(tmp / "synth4"), "--source", str(quarter), "--workers", "2"])
        lines.append(f"| driver peak RSS | {rss_quarter} MB at {n // 4} samples, {rss_full} MB at {n} |")

        sys.path.insert(0, str(ROOT / "tests" / "annotate"))
        from fake_openai import FakeOpenAI  # the same scripted server the tests use

        tsrc = make_source(tmp / "tsrc", args.teacher_samples, 64)
        with FakeOpenAI() as server:
            server.delay_s = args.delay
            targs = [
                "--out",
                str(tmp / "teach"),
                "--source",
                str(tsrc),
                "--teacher",
                "openai",
                "--base-url",
                server.url,
                "--model",
                "fake",
                "--structured-output",
                "json_schema",
                "--concurrency",
                str(args.concurrency),
                "--api-key-env",
                "BENCH_KEY",
                "--workers",
                "2",
            ]
            wall_t, inner_t, _ = run_synth(targs, env={"BENCH_KEY": "x"})
            stage_s = max(t[1] for t in server.times) - min(t[0] for t in server.times)
        ideal = args.concurrency / args.delay
        m = args.teacher_samples
        lines.append(
            f"| openai teacher, {m} samples, delay {args.delay}s, concurrency {args.concurrency} | "
            f"teacher stage {m / stage_s:.1f} samples/s (first request to last reply) vs ideal "
            f"{ideal:.1f}: {m / stage_s / ideal:.2f}; whole job {m / inner_t:.1f}/s incl. Ray start-up |"
        )
    table = "| measure | result |\n|---|---|\n" + "\n".join(lines)
    out = ROOT / "benchmarks" / "results" / "pipeline.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
