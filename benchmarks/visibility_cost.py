"""The least the visibility floor can cost per row, from what it must do and what each primitive costs. Run on
demand (not in CI):

    python benchmarks/visibility_cost.py [--rows 600] [--side 512]

The floor measures every step as ``ssim.m`` does: the luma of the image before and after it, averaged down to the
viewer's scale, two Gaussian blurs of each image (its local mean and mean square) and one of each pair (the cross
term), and a dozen array passes. This counts, on the benchmark's rows (``benchmarks/pipeline.py``'s six photos,
default recipe), how many images and comparisons a row measures and how many steps are drawn again, times each
primitive alone on one core, and prints the sum: no implementation of this measure costs less. It also prints
``realize``'s own cost per row with the floor on and off, for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import PHOTOS  # noqa: E402  (benchmarks/pipeline.py's rows: the same six photos)

import robustgen as rg  # noqa: E402
import robustgen.degrade.visibility as vis  # noqa: E402
from robustgen.degrade.quality import wang_factor  # noqa: E402
from robustgen.images import load_image  # noqa: E402
from robustgen.schemas.recipe import VisibilityFloor  # noqa: E402


def primitive_ms(side: int) -> dict[str, float]:
    """ms of each primitive at ``side`` x ``side`` (the viewer's scale is ``side / wang_factor``), best of 3."""
    rgb = cv2.resize(load_image("skimage:astronaut"), (side, side))
    f = wang_factor(rgb)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = (side // f, side // f)
    plane = cv2.resize(gray.astype(np.float32), small, interpolation=cv2.INTER_AREA)

    def t(fn) -> float:
        return 1e3 * min(timeit.repeat(fn, number=400, repeat=3)) / 400

    return {
        "luma": t(lambda: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)),
        "average down": 0.0
        if f == 1
        else t(lambda: cv2.resize(np.float32(gray), small, interpolation=cv2.INTER_LINEAR)),
        "blur": t(lambda: cv2.GaussianBlur(plane, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)),
        "pass": t(lambda: cv2.multiply(plane, plane)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--side", type=int, default=512)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    images = [cv2.resize(load_image(f"skimage:{p}"), (args.side, args.side)) for p in PHOTOS]
    recipe, floor, off = rg.Recipe(), VisibilityFloor(), VisibilityFloor(enabled=False)
    plans = [recipe.sample(seed=0, sample_id=f"s{i:06d}") for i in range(args.rows)]
    counts = {"images": 0, "comparisons": 0, "colour": 0}
    real_effect, real_delta_e = vis.effect, vis.delta_e

    def effect(*a, **k):
        counts["comparisons"] += 1
        return real_effect(*a, **k)

    def delta_e(*a, **k):
        counts["colour"] += 1
        return real_delta_e(*a, **k)

    vis.effect, vis.delta_e = effect, delta_e
    redrawn = 0
    for i, p in enumerate(plans):
        real = vis.realize(images[i % len(images)], p.degradations, floor, 0, f"s{i:06d}")
        redrawn += real.redrawn
        counts["images"] += 1 if p.degradations else 0
    vis.effect, vis.delta_e = real_effect, real_delta_e
    counts["images"] += counts["comparisons"]  # each comparison measures one new image
    n = args.rows
    per = {k: v / n for k, v in counts.items()}
    ms = primitive_ms(args.side)
    plane = ms["luma"] + ms["average down"] + 2 * ms["blur"] + 2 * ms["pass"]
    compare = ms["blur"] + 9 * ms["pass"]
    least = per["images"] * plane + per["comparisons"] * compare

    def realize_ms(fl: VisibilityFloor) -> float:
        t = time.thread_time()
        for i, p in enumerate(plans):
            vis.realize(images[i % len(images)], p.degradations, fl, 0, f"s{i:06d}")
        return 1e3 * (time.thread_time() - t) / n

    on, no = sorted(realize_ms(floor) for _ in range(3))[1], sorted(realize_ms(off) for _ in range(3))[1]
    print(f"| {args.side} px, {n} rows | per row |\n|---|---|")
    print(
        f"| images measured / comparisons / colour measures / steps drawn again | {per['images']:.2f} / "
        f"{per['comparisons']:.2f} / {per['colour']:.2f} / {redrawn / n:.2f} |"
    )
    print("| primitives (ms) | " + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()) + " |")
    print(
        f"| the least the SSIM measure can cost (one image {plane:.3f} ms, one comparison {compare:.3f} ms) | "
        f"{least:.2f} ms |"
    )
    print(f"| realize with the floor / without (median of 3) | {on:.2f} / {no:.2f} ms: the floor {on - no:.2f} ms |")


if __name__ == "__main__":
    main()
