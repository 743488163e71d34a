"""Images per second for every degrader at 512 and 1024 px, one thread, beside albumentations 2.0.8.

Run on demand (not in CI):  python benchmarks/degraders.py [--sizes 512 1024] [--repeat 7] [--out FILE]

Each peer is the albumentations transform that makes the closest effect, set to a comparable
strength, timed on the same images in the same run. Ratios are ours / peer (higher = faster).
Writes a markdown table (default benchmarks/results/degraders.md) and prints it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

import robustgen as rg  # noqa: E402
from robustgen.images import load_image  # noqa: E402

SEVERITY = 0.6


def peers(size: int) -> dict[str, A.BasicTransform]:
    """albumentations equivalents, set to the strength our degrader has at SEVERITY on a size x size image."""
    warnings.filterwarnings("ignore")
    probe = np.zeros((size, size, 3), np.uint8)

    def p(name: str) -> dict:
        return rg.degrade_image(probe, name, SEVERITY, seed=1)[1].params

    def odd(x: float) -> int:
        return max(3, int(round(x)) | 1)

    blur_sigma = p("lens_blur")["sigma"] * size
    motion_k = odd(p("motion_blur")["length"] * size)
    sharp = p("oversharpening")
    zoom = p("zoom_blur")["zoom"]
    glass = p("glass_blur")
    noise_sigma = p("noise")["sigma"] / 255.0
    speckle = p("speckle_noise")["sigma"] * 3**0.5  # uniform half-width with the same std
    imp = p("impulse_noise")
    t = {
        "lens_blur": A.GaussianBlur(sigma_limit=(blur_sigma, blur_sigma), blur_limit=0, p=1),
        "defocus_blur": A.Defocus(
            radius=(max(1, round(p("defocus_blur")["radius"] * size)),) * 2, alias_blur=(0.1, 0.1), p=1
        ),
        "motion_blur": A.MotionBlur(blur_limit=(motion_k, motion_k), p=1),
        "zoom_blur": A.ZoomBlur(max_factor=(1 + zoom, 1 + zoom), step_factor=(zoom / 16, zoom / 16), p=1),
        "lens_distortion": A.OpticalDistortion(distort_limit=(abs(p("lens_distortion")["k1"]),) * 2, p=1),
        "lens_flare": A.RandomSunFlare(p=1),
        "dirty_lens": A.Spatter(mode="mud", p=1),
        "saturation": A.ColorJitter(brightness=0, contrast=0, saturation=(p("saturation")["factor"],) * 2, hue=0, p=1),
        "chromatic_aberration": A.ChromaticAberration(p=1),
        "vignetting": A.Illumination(mode="corner", effect_type="darken", intensity_range=(0.2, 0.2), p=1),
        "overexposure": A.RandomBrightnessContrast(brightness_limit=(0.4, 0.4), contrast_limit=(0, 0), p=1),
        "white_balance": A.PlanckianJitter(p=1),
        "sensor_noise": A.ShotNoise(p=1),
        "iso_noise": A.ISONoise(p=1),
        "speckle_noise": A.MultiplicativeNoise(
            multiplier=(1 - speckle, 1 + speckle), per_channel=True, elementwise=True, p=1
        ),
        "compression": A.ImageCompression(
            compression_type="jpeg", quality_range=(p("compression")["quality"],) * 2, p=1
        ),
        "webp_compression": A.ImageCompression(
            compression_type="webp", quality_range=(p("webp_compression")["quality"],) * 2, p=1
        ),
        "pixelate": A.Downscale(
            scale_range=(1 / max(1.0, p("pixelate")["cell"] * size),) * 2,
            interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_NEAREST},
            p=1,
        ),
        "downscale": A.Downscale(
            scale_range=(1 / p("downscale")["factor"],) * 2,
            interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR},
            p=1,
        ),
        "ringing": A.RingingOvershoot(blur_limit=(21, 21), cutoff=(0.6, 0.6), p=1),
        "impulse_noise": A.SaltAndPepper(amount=(imp["amount"],) * 2, salt_vs_pepper=(imp["salt"],) * 2, p=1),
        "darkness": A.RandomGamma(gamma_limit=(160, 160), p=1),
        "atmospheric_turbulence": A.ElasticTransform(alpha=size * 0.01, sigma=size / 24, p=1),
        "glass_blur": A.GlassBlur(
            sigma=glass["sigma"] * size, max_delta=max(1, round(glass["scatter"] * size)), iterations=1, p=1
        ),
        "noise": A.GaussNoise(std_range=(noise_sigma, noise_sigma), p=1),
        "fog": A.RandomFog(p=1),
        "rain": A.RandomRain(p=1),
        "snow": A.RandomSnow(p=1),
        "glare": A.Illumination(mode="gaussian", effect_type="brighten", intensity_range=(0.2, 0.2), p=1),
        "shadow": A.RandomShadow(p=1),
        "occlusion": A.CoarseDropout(p=1),
        "sharpness_change": A.Sharpen(p=1),
        "oversharpening": A.UnsharpMask(sigma_limit=(sharp["radius"] * size,) * 2, blur_limit=0, alpha=(1.0, 1.0), p=1),
        "posterize": A.Posterize(num_bits=(p("posterize")["bits"],) * 2, p=1),
        "color_grading": A.RandomToneCurve(per_channel=True, p=1),
    }
    for tr in t.values():
        tr.set_random_seed(0)
    return t


def _apply_only(name: str, size: int):
    """Our degrader's ``apply`` alone, its parameters drawn once beforehand: the pixel work without the seeded
    plan, parameter validation and exact record that ``degrade_image`` adds per call."""
    from robustgen.degrade import registry

    degrader = registry.get(name)
    rec = rg.degrade_image(np.zeros((size, size, 3), np.uint8), name, SEVERITY, seed=1)[1]
    params = degrader.Params.model_validate(rec.params)
    return lambda im: degrader.apply(im, params, np.random.default_rng(rec.seed))


def rate(fn, images: list[np.ndarray], repeat: int) -> float:
    """Best-of-``repeat`` images/s over the image list (best of runs damps machine noise)."""
    fn(images[0])  # warm up caches and lazy imports
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for img in images:
            fn(img)
        best = min(best, time.perf_counter() - t0)
    return len(images) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="degrader names (default: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "degraders.md")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    photos = [load_image(f"skimage:{n}") for n in ("astronaut", "coffee", "chelsea")]
    peer = {size: peers(size) for size in args.sizes}
    names = args.only or [d.name for d in rg.degraders()]
    rows, ratios, slowest = [], {s: [] for s in args.sizes}, {}
    for name in names:
        cells = [name]
        for size in args.sizes:
            images = [cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in photos]
            ours = rate(lambda im, n=name: rg.degrade_image(im, n, SEVERITY, seed=1), images, args.repeat)
            slowest[(name, size)] = ours
            cell = f"{ours:.1f}"
            if name in peer[size]:
                theirs = rate(lambda im, n=name, s=size: peer[s][n](image=im)["image"], images, args.repeat)
                ratios[size].append(ours / theirs)
                cell += f" / {theirs:.1f} ({ours / theirs:.2f}x)"
                if ours < theirs:  # where we lose: how fast the pixel work alone is, without plan and record
                    bare = rate(_apply_only(name, size), images, args.repeat)
                    cell += f"; apply only {bare / theirs:.2f}x"
            cells.append(cell)
        first = peer[args.sizes[0]]
        cells.append(type(first[name]).__name__ if name in first else "-")
        rows.append(cells)
        print(" | ".join(cells), flush=True)
    head = ["degrader"] + [f"{s}px img/s: ours / peer (ratio)" for s in args.sizes] + ["albumentations peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    for size in args.sizes:
        worst = min((v, n) for (n, s), v in slowest.items() if s == size)
        med = statistics.median(ratios[size]) if ratios[size] else float("nan")
        lines.append(
            f"- {size}px: median ratio to peers {med:.2f}x over {len(ratios[size])} pairs; "
            f"slowest degrader {worst[1]} at {worst[0]:.1f} img/s"
        )
    lines.append(f"- one thread (cv2.setNumThreads(1)), severity {SEVERITY}, best of {args.repeat} runs")
    table = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
