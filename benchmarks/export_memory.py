"""Peak anonymous resident memory (RssAnon: not file-backed, so a memory-mapped Arrow cache does not count) of
`export --to trl`, `export --to verl` and of building and iterating the training dataset, at two dataset sizes.

    python benchmarks/export_memory.py [--sizes 1000,20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "per_image: {min: 1, max: 1}\nseverity: {kind: uniform, low: 0.2, high: 0.5}\n"


def peak_anon_mb(cmd: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,20000")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rg-expmem-"))
    py = sys.executable
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(work / "hf-cache")}
    rows = {}
    for n in [int(x) for x in args.sizes.split(",")]:
        src = work / f"rows{n}.jsonl"
        img = work / "a.png"
        if not img.exists():
            import cv2

            from robustgen.images import load_image, write_image

            write_image(img, cv2.resize(load_image("skimage:coffee"), (96, 64)))
        src.write_text(
            "".join(
                f'{{"id": "r{i}", "image": "a.png", "question": "What drink?", "answer": "coffee"}}\n' for i in range(n)
            )
        )
        (work / "recipe.yaml").write_text(RECIPE)
        ds = work / f"ds{n}"
        subprocess.run(
            [
                py,
                "-m",
                "robustgen.cli",
                "synth",
                "--out",
                str(ds),
                "--source",
                str(src),
                "--recipe",
                str(work / "recipe.yaml"),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        rows[n] = {
            "export --to trl": peak_anon_mb(
                [py, "-m", "robustgen.cli", "export", str(ds), "--to", "trl", "--out", str(work / f"trl{n}")], env
            ),
            "export --to verl": peak_anon_mb(
                [py, "-m", "robustgen.cli", "export", str(ds), "--to", "verl", "--out", str(work / f"verl{n}")], env
            ),
            "training dataset, built and iterated": peak_anon_mb(
                [
                    py,
                    "-c",
                    f"from robustgen.train.data import load_training_dataset as l\nfor _ in l({str(ds)!r}): pass",
                ],
                env,
            ),
        }
    sizes = sorted(rows)
    print(f"peak RssAnon (MB) at {', '.join(map(str, sizes))} records:")
    for what in rows[sizes[0]]:
        vals = [rows[n][what] for n in sizes]
        print(f"  {what:40s} " + "  ".join(f"{v:7.0f}" for v in vals) + f"   ratio {vals[-1] / vals[0]:.2f}")


if __name__ == "__main__":
    main()
