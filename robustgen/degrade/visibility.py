"""The visibility floor: every degradation written into a record changes the image it is applied to by at least
a documented amount, measured on that image, so a label names something a model can see.

A step's effect is 1 - SSIM on luma (``quality.ssim``: Wang's window, the viewer's scale) between the image
before and after it, and, for effects SSIM does not see (colour only), the mean CIEDE2000 colour difference.
A step under the floor is drawn again, stronger, from its own stream (run seed, sample id, step): its record
holds the parameters actually applied, so a replay stays exact. A step invisible even at severity 1 on this
image (white balance on a grey picture) is dropped, and the sample says so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from robustgen.degrade import registry
from robustgen.degrade.apply import own_severity, plan_one, render, stated_severity
from robustgen.degrade.quality import LumaPlanes, ssim_planes
from robustgen.degrade.seeding import generator
from robustgen.schemas import AppliedDegradation
from robustgen.schemas.degradation import Visibility
from robustgen.schemas.recipe import VisibilityFloor

#: the longer side colour differences are measured at: a colour shift survives averaging down, and CIEDE2000 costs
#: 32 ms at 256 x 256 against 0.7 ms here
DELTA_E_SIDE = 48


#: CIEDE2000 is at most this many times the Euclidean Lab distance (CIE76) of the same two colours: its lightness,
#: chroma and hue differences are each divided by a weight >= 1, a* is stretched by at most 1.5 (so the chroma and hue
#: differences together are at most 1.5 times the a*b* distance), and the rotation term at most doubles their squares:
#: dE00^2 <= dL^2 + 2 * 1.5^2 * dab^2 <= 4.5 * dE76^2, and sqrt(4.5) = 2.121
CIEDE_PER_CIE76 = 2.13


def delta_e(before: np.ndarray, after: np.ndarray, at_least: float | None = None) -> float | None:
    """Mean CIEDE2000 colour difference between two images averaged down to about ``DELTA_E_SIDE`` (colour effects are
    broad; averaging only lowers what fine colour noise would add, so the floor errs towards stronger labels). With
    ``at_least``: None when the cheap bound (``CIEDE_PER_CIE76`` times the mean CIE76 distance) already shows the pair
    under it (CIEDE2000 costs ten times more)."""
    from skimage.color import deltaE_ciede2000

    lab_before, lab_after = _lab(_small(before)), _lab(_small(after))
    if at_least is not None:
        diff = cv2.subtract(lab_before, lab_after)
        if CIEDE_PER_CIE76 * float(np.mean(np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)))) < at_least:
            return None
    return float(np.mean(deltaE_ciede2000(lab_before, lab_after)))


def _small(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` averaged down by halvings (OpenCV's area average is fastest at exactly 2x: an odd edge row or column
    is left out at each) while its longer side stays at least ``DELTA_E_SIDE``."""
    while max(rgb.shape[:2]) >= 2 * DELTA_E_SIDE and min(rgb.shape[:2]) >= 2:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb[: h - h % 2, : w - w % 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return rgb


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65, L in 0..100) of a uint8 sRGB image, by OpenCV (within 0.4 of scikit-image's, in half the time)."""
    return cv2.cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)


def effect(
    before: np.ndarray, after: np.ndarray, floor: VisibilityFloor, planes: LumaPlanes | None = None
) -> tuple[Visibility, LumaPlanes]:
    """What one step did to the image: its SSIM drop, and its colour difference when the drop alone is under the
    floor (measured only then: it costs more); with the planes of ``after`` (the next step's ``before``)."""
    planes = planes or LumaPlanes(before)
    seen = LumaPlanes(after, planes.f)
    drop = max(0.0, 1.0 - ssim_planes(planes, seen))
    # None both when the drop is enough and when the colour bound already proves the step under the floor (then it is
    # drawn again or dropped, never written)
    de = None if drop >= floor.min_ssim_drop else delta_e(before, after, at_least=floor.min_delta_e)
    return Visibility(ssim_drop=round(drop, 5), delta_e=None if de is None else round(de, 4)), seen


def visible(v: Visibility, floor: VisibilityFloor) -> bool:
    return v.ssim_drop >= floor.min_ssim_drop or (v.delta_e is not None and v.delta_e >= floor.min_delta_e)


@dataclass
class Realized:
    """A plan as applied under the floor: the image, the records written (each with its measured effect), the
    names of planned degradations dropped as invisible, how many steps were drawn again, and the luma planes of the
    source image when they were measured (another plan on the same image reuses them)."""

    image: np.ndarray
    records: list[AppliedDegradation]
    dropped: list[str]
    redrawn: int
    source_planes: LumaPlanes | None = None


#: a calibrated step within this much of its target drop is taken as it is; renders spent aiming one step, at most
AIM_WITHIN = 0.015
AIM_RENDERS = 4


def aim(
    image: np.ndarray,
    rec: AppliedDegradation,
    table: dict,
    floor: VisibilityFloor,
    planes: LumaPlanes,
    rng_of: Callable[[], np.random.Generator],
) -> tuple[AppliedDegradation, np.ndarray, Visibility, LumaPlanes]:
    """A calibrated step aimed on ``image`` itself: the degrader's severity at which this step's drop (1 - SSIM,
    the floor's measure) comes nearest the target its stated severity stands for. The table's curve gives the
    first guess and, scaled by what each render measured, the next ones (then the secant between the two nearest
    on either side); each candidate draws its parameters from the same fresh stream, so the drop moves with the
    severity alone, and the record holds the one kept."""
    from robustgen.degrade.calibration import severity_seen, target_drop

    want = target_drop(table, rec.shown)
    degrader = registry.get(rec.name)
    tried: list[tuple[float, AppliedDegradation, np.ndarray, Visibility, LumaPlanes]] = []
    s = rec.severity
    for _ in range(AIM_RENDERS):
        cand = plan_one(degrader, s, rng_of()).model_copy(update={"shown_severity": rec.shown_severity})
        after = render(image, cand)
        seen, after_planes = effect(image, after, floor, planes)
        tried.append((s, cand, after, seen, after_planes))
        drop = seen.ssim_drop
        if abs(drop - want) <= AIM_WITHIN or (drop < want and s >= 1.0):
            break
        below = [t for t in tried if t[3].ssim_drop < want]
        above = [t for t in tried if t[3].ssim_drop > want]
        if below and above:  # bracketed: the secant between the nearest on either side
            lo, hi = max(below, key=lambda t: t[0]), min(above, key=lambda t: t[0])
            dl, dh = lo[3].ssim_drop, hi[3].ssim_drop
            nxt = lo[0] + (want - dl) * (hi[0] - lo[0]) / max(1e-9, dh - dl)
        else:  # the table's curve, scaled to what this image shows
            guess = severity_seen(table, rec.name, s, drop, want)
            if guess is None or any(abs(guess - t[0]) < 1e-4 for t in tried):
                # the curve cannot say (flat, or clamped to its first grid point): scale the severity itself
                guess = s * want / drop if drop > 1e-6 else 2 * s
            nxt = guess
        nxt = round(min(1.0, max(0.01, nxt)), 4)
        if any(abs(nxt - t[0]) < 1e-4 for t in tried):
            break  # no new severity to try (at an end of the range)
        s = nxt
    best = min(tried, key=lambda t: abs(t[3].ssim_drop - want))
    return best[1], best[2], best[3], best[4]


#: a step drawn again aims this far above the floor (a prediction from one measurement is rough)
MARGIN = 1.5


def _showing(rec: AppliedDegradation, seen: Visibility, floor: VisibilityFloor, guess: float) -> float:
    """The severity to draw an invisible step again at: the lowest that this image's measurement predicts will
    clear the floor by ``MARGIN`` (by 1 - SSIM along the catalog's curve for the degrader, scaled to the drop seen
    here, or by colour difference growing in proportion to severity), else ``guess`` of the way up to 1."""
    from robustgen.degrade.calibration import severity_seen, shipped_table

    s = rec.severity
    options = []
    if seen.ssim_drop > 1e-4:
        by_ssim = severity_seen(shipped_table(), rec.name, s, seen.ssim_drop, MARGIN * floor.min_ssim_drop)
        if by_ssim is not None:
            options.append(by_ssim)
    if seen.delta_e is not None and seen.delta_e > 0.05:  # in proportion on the degrader's own scale
        degrader = registry.get(rec.name)
        options.append(stated_severity(degrader, own_severity(degrader, s) * MARGIN * floor.min_delta_e / seen.delta_e))
    picked = min(options) if options else s + (1.0 - s) * guess
    return round(min(1.0, max(picked, s + 0.05)), 4)


def realize(
    image: np.ndarray,
    records: list[AppliedDegradation],
    floor: VisibilityFloor,
    seed: int,
    sample_id: str,
    stream: str = "visible",
    table: dict | None = None,
    planes: LumaPlanes | None = None,
) -> Realized:
    """Apply ``records`` in order, each held to ``floor`` on the image it is applied to (see the module). With a
    calibration ``table``, a calibrated step of a non-geometric degrader is first aimed at its target drop on that
    image (``aim``). ``planes``: ``image``'s luma planes, when an earlier plan on it measured them."""
    out = image
    kept: list[AppliedDegradation] = []
    dropped: list[str] = []
    redrawn = 0
    if planes is None and (floor.enabled or table is not None) and records:
        planes = LumaPlanes(image)
    source_planes = planes
    for k, rec in enumerate(records):
        calibrate = (
            table is not None and rec.shown_severity is not None and not registry.get(rec.name).geometric
            and rec.name in table["degraders"]
        )  # fmt: skip
        if calibrate:
            # one stream per sample and step, whatever the version: the two images of a compare question draw the
            # same values and differ in strength only
            stream_of = lambda k=k: generator(seed, f"aim:{sample_id}:{k}")  # noqa: E731
            rec, after, seen, after_planes = aim(out, rec, table, floor, planes, stream_of)
        else:
            after = render(out, rec)
        if not floor.enabled:
            kept.append(rec)
            out = after
            if planes is not None:  # a later calibrated step measures from this one's image
                planes = after_planes if calibrate else LumaPlanes(after, planes.f)
            continue
        if not calibrate:
            seen, after_planes = effect(out, after, floor, planes)
        rng = None
        for attempt in range(floor.redraws + 1):
            if visible(seen, floor):
                break
            if attempt == floor.redraws or (attempt > 0 and rec.severity >= 1.0):
                rec = None  # invisible at full strength on this image (tried once there)
                break
            rng = rng or generator(seed, f"{stream}:{sample_id}:{k}")
            # stronger each time, severity 1 last: first where this image's own measurement says the step will show
            # with a margin (or, with nothing to go by, part of the way up at random)
            last = attempt == floor.redraws - 1
            guess = float(rng.uniform(0.3, 0.7))
            severity = 1.0 if last else _showing(rec, seen, floor, guess)
            old = rec
            rec = plan_one(registry.get(rec.name), severity, rng)
            if old.shown_severity is not None:  # calibrated: the stated severity rises as much, relatively
                up = (severity - old.severity) / max(1e-9, 1.0 - old.severity)
                rec = rec.model_copy(update={"shown_severity": round(min(1.0, old.shown + (1 - old.shown) * up), 4)})
            after = render(out, rec)
            seen, after_planes = effect(out, after, floor, planes)
            redrawn += 1
        if rec is None:
            dropped.append(records[k].name)
            continue
        kept.append(rec.model_copy(update={"visibility": seen}))
        out, planes = after, after_planes
    return Realized(out, kept, dropped, redrawn, source_planes)
