"""Calibrated severity: the same requested severity gives the same mean quality drop whatever the degrader.

``measure`` degrades a reference set at a grid of severities and records each degrader's mean quality drop:
1 - SSIM, and GMSD (gradient magnitude similarity deviation, Xue et al. 2014), a measure that is not SSIM.
The catalog's target at a severity is the median drop of the non-geometric degraders there; a degrader's
calibrated severity for a requested one is where its own (monotone) drop curve meets the target. A table built
on the photos scikit-image ships comes with the package (``robustgen calibrate`` rebuilds it, or builds one on
your images)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robustgen.degrade import registry
from robustgen.degrade.apply import degrade_image, render, single_record
from robustgen.degrade.quality import ssim

GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TOLERANCE = 0.05  # |drop - target| within this counts as calibrated
TABLE_VERSION = 2  # 2: severities on the lifted scales (``Degrader.visible_from``), the target on the own ones


def gmsd(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Gradient magnitude similarity deviation on the luma (0 = identical; larger = worse)."""
    a = cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(degraded, cv2.COLOR_RGB2GRAY).astype(np.float32)
    a, b = cv2.blur(a, (2, 2))[::2, ::2], cv2.blur(b, (2, 2))[::2, ::2]
    kx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32) / 3.0

    def grad(x: np.ndarray) -> np.ndarray:
        return np.sqrt(cv2.filter2D(x, -1, kx) ** 2 + cv2.filter2D(x, -1, kx.T) ** 2)

    ga, gb = grad(a), grad(b)
    c = 170.0
    gms = (2 * ga * gb + c) / (ga * ga + gb * gb + c)
    return float(gms.std())


def measure(
    images: Sequence[np.ndarray],
    names: Iterable[str] | None = None,
    seeds: int = 2,
    grid: Sequence[float] = GRID,
    on_degrader: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """The calibration table: per degrader and grid severity the mean 1 - SSIM and GMSD over images x seeds;
    ``on_degrader(name, k, n)`` hears of each degrader as it starts."""
    chosen = [registry.get(n) for n in names] if names else registry.degraders()
    table: dict[str, Any] = {"version": TABLE_VERSION, "grid": list(grid), "images": len(images), "seeds": seeds}
    table["degraders"] = {}
    for k, d in enumerate(chosen, 1):
        if on_degrader:
            on_degrader(d.name, k, len(chosen))
        ssim_drop, gm = [], []
        for s in grid:
            a, b = [], []
            for img in images:
                for seed in range(seeds):
                    out = degrade_image(img, d.name, s, seed=seed)[0]
                    a.append(1.0 - ssim(img, out))
                    b.append(gmsd(img, out))
            ssim_drop.append(round(float(np.mean(a)), 5))
            gm.append(round(float(np.mean(b)), 5))
        entry = {"geometric": d.geometric, "ssim_drop": ssim_drop, "gmsd": gm}
        if d.visible_from > 0:  # its scale starts later: the drops on its own scale too, for the target
            own = [
                [1.0 - ssim(img, render(img, single_record(d.name, s, seed, own_scale=True))) for img in images
                 for seed in range(seeds)]
                for s in grid
            ]  # fmt: skip
            entry["own_ssim_drop"] = [round(float(np.mean(drops)), 5) for drops in own]
        table["degraders"][d.name] = entry
    table["target"] = _target(table)
    return table


def _target(table: dict[str, Any]) -> list[float]:
    """The catalog's median drop of the non-geometric degraders at each grid severity, each on its own scale: where
    ``visible_from`` starts a degrader's scale later (so its mildest draw shows), that moves the degrader, not what a
    calibrated severity stands for."""
    rows = [v.get("own_ssim_drop", v["ssim_drop"]) for v in table["degraders"].values() if not v["geometric"]]
    return [round(float(np.median([r[i] for r in rows])), 5) for i in range(len(table["grid"]))]


def _monotone(curve: Sequence[float]) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(curve, dtype=np.float64))


def target_drop(table: dict[str, Any], severity: float) -> float:
    """The quality drop (1 - SSIM) a calibrated ``severity`` stands for: the catalog's median there."""
    return float(np.interp(severity, table["grid"], table["target"]))


def severity_for(table: dict[str, Any], name: str, want: float, gain: float = 1.0) -> float | None:
    """The severity at which ``name``'s drop curve, scaled by ``gain`` (how much stronger it acts on this image than
    on the table's), first reaches ``want`` (clamped to the grid's range); None for a degrader not in the table."""
    entry = table["degraders"].get(name)
    if entry is None:
        return None
    grid = np.asarray(table["grid"], dtype=np.float64)
    curve = _monotone(entry["ssim_drop"]) * gain
    if want >= curve[-1]:
        return 1.0
    if want <= curve[0]:
        return float(grid[0])
    # the first grid step that reaches the target, interpolated within it
    i = int(np.searchsorted(curve, want, side="left"))
    lo, hi = curve[i - 1], curve[i]
    t = 0.0 if hi <= lo else (want - lo) / (hi - lo)
    return round(float(grid[i - 1] + t * (grid[i] - grid[i - 1])), 4)


def severity_seen(table: dict[str, Any], name: str, severity: float, drop: float, want: float) -> float | None:
    """The severity at which ``name`` should reach the drop ``want`` on an image where it dropped ``drop`` at
    ``severity``: its table curve scaled by how much stronger it acts here; None when the table cannot say (not in
    it, or a drop or curve of about nothing)."""
    if name not in table["degraders"] or drop <= 1e-6:
        return None
    base = table_drop(table, name, severity)
    return severity_for(table, name, want, drop / base) if base > 1e-6 else None


def table_drop(table: dict[str, Any], name: str, severity: float) -> float:
    """``name``'s mean drop at ``severity`` on the table's images (its monotone curve, interpolated)."""
    return float(np.interp(severity, table["grid"], _monotone(table["degraders"][name]["ssim_drop"])))


def calibrated_severity(table: dict[str, Any], name: str, severity: float) -> float:
    """The severity at which ``name`` reaches the catalog's target drop for ``severity`` on the table's images
    (clamped to its range; a degrader missing from the table keeps the requested severity). Applied to an image,
    ``visibility.realize`` then aims the step at the target on that image itself."""
    s = severity_for(table, name, target_drop(table, severity))
    return severity if s is None else s


def report(table: dict[str, Any], measured: dict[str, Any] | None = None, at: float = 0.5) -> dict[str, Any]:
    """How well calibration holds at severity ``at``: each degrader's drop at its calibrated severity (from
    ``measured``, a table measured with calibration on; else interpolated from ``table``) against the target."""
    target = float(np.interp(at, table["grid"], table["target"]))
    rows = {}
    for name, entry in table["degraders"].items():
        s = calibrated_severity(table, name, at)
        if measured is not None and name in measured:
            drop = measured[name]
        else:
            drop = float(np.interp(s, table["grid"], _monotone(entry["ssim_drop"])))
        ok = abs(drop - target) <= TOLERANCE
        why = ""
        top = float(_monotone(entry["ssim_drop"])[-1])
        if not ok:
            why = f"reaches at most {top:.3f} at severity 1" if top < target else "too strong even at its weakest"
        rows[name] = {
            "severity": s,
            "drop": round(drop, 4),
            "ok": ok,
            "geometric": entry["geometric"],
            "why": why,
            "top": round(top, 4),  # its mean drop at severity 1: under the target, it falls short on darker photos
        }
    plain = [r for r in rows.values() if not r["geometric"]]
    share = sum(r["ok"] for r in plain) / max(1, len(plain))
    return {"at": at, "target": round(target, 4), "share_within": round(share, 3), "degraders": rows}


#: the photos the shipped table is built on: several contents (a street scene, a portrait in grey, textures, coins,
#: a fundus, a micrograph, the night sky) at two sizes each; scikit-image's astronaut, coffee, chelsea and rocket are
#: kept out of it, so calibration is checked on photos the table never saw (tests/degrade/test_calibration.py)
REFERENCE_PHOTOS = (
    "stereo_motorcycle", "camera", "brick", "grass", "coins", "retina", "immunohistochemistry", "hubble_deep_field"
)  # fmt: skip
HELD_OUT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
REFERENCE_SIDES = (256, 640)


def reference_images(folder: str | Path | None = None, sides: Sequence[int] = REFERENCE_SIDES) -> list[np.ndarray]:
    """The reference set: ``REFERENCE_PHOTOS`` (default, all shipped with scikit-image) or every image in
    ``folder``, each at every longer side in ``sides`` (never enlarged)."""
    from robustgen.errors import ImageError
    from robustgen.images import read_image, to_rgb_uint8
    from robustgen.schemas.paths import regular_file_under

    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

    def sized(img: np.ndarray) -> list[np.ndarray]:
        h, w = img.shape[:2]
        out = []
        for size in dict.fromkeys(
            (max(8, round(w * min(1.0, s / max(h, w)))), max(8, round(h * min(1.0, s / max(h, w))))) for s in sides
        ):  # one copy per distinct size: a small photo is not measured twice at its own size
            out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size != (w, h) else img)
        return out

    if folder is None:
        import skimage.data

        photos = []
        for name in REFERENCE_PHOTOS:
            img = getattr(skimage.data, name)()
            photos += sized(to_rgb_uint8(img[0] if isinstance(img, tuple) else img, where=f"skimage:{name}"))
        return photos
    out = []
    root = Path(folder)
    for p in sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes):
        try:  # one image at a time, kept only as its smaller copies: memory stays flat for any number of photos
            out += sized(read_image(regular_file_under(root, str(p.relative_to(root)))))
        except (ImageError, ValueError) as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    return out


@cache
def shipped_table() -> dict[str, Any]:
    """The table built on the bundled photos (package data)."""
    return json.loads(files("robustgen.degrade").joinpath("calibration.json").read_text(encoding="utf-8"))


def load_table(path: str | Path | None = None, sha256: str | None = None) -> dict[str, Any]:
    """The shipped table (``path`` None) or one ``robustgen calibrate`` wrote (read once per process)."""
    if path is None:
        return shipped_table()
    return _user_table(str(path), sha256 or table_sha256(path))


@cache
def _user_table(path: str, sha256: str) -> dict[str, Any]:
    table = json.loads(Path(path).read_bytes())
    if hashlib.sha256(Path(path).read_bytes()).hexdigest() != sha256:
        raise ValueError(f"calibration: {path} changed while in use")
    return table


def _numbers(values: list) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _grid(values: list) -> bool:
    """Severities in (0, 1], rising."""
    return all(0 < v <= 1 for v in values) and all(a < b for a, b in zip(values, values[1:], strict=False))


def table_sha256(path: str | Path) -> str:
    """The SHA-256 of a calibration table file; ``ValueError`` naming the file when it is not one."""
    try:
        data = Path(path).read_bytes()
        table = json.loads(data)
    except OSError as exc:
        raise ValueError(f"calibration: {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError):
        raise ValueError(f"calibration: {path}: not a JSON calibration table") from None
    ok = isinstance(table, dict) and isinstance(table.get("degraders"), dict) and isinstance(table.get("grid"), list)
    ok = ok and table.get("version") == TABLE_VERSION and isinstance(table.get("target"), list)
    n = len(table["grid"]) if ok else 0
    ok = ok and n >= 2 and len(table["target"]) == n and _numbers(table["grid"]) and _numbers(table["target"])
    ok = ok and _grid(table["grid"])
    ok = ok and all(
        isinstance(e, dict) and isinstance(e.get("ssim_drop"), list) and len(e["ssim_drop"]) == n
        and _numbers(e["ssim_drop"])
        for e in table["degraders"].values()
    )  # fmt: skip
    if isinstance(table, dict) and table.get("version") == 1:
        raise ValueError(
            f"calibration: {path}: a version 1 table, measured before degraders' severity scales started where their "
            f"effect shows (visible_from): rebuild it with `robustgen calibrate`"
        )
    if not ok:
        raise ValueError(f"calibration: {path}: not a table written by `robustgen calibrate` (version {TABLE_VERSION})")
    return hashlib.sha256(data).hexdigest()
