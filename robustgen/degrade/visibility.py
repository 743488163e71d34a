"""The visibility floor: every degradation written into a record changes the image it is applied to by at least
a documented amount, measured on that image, so a label names something a model can see.

A step's effect is 1 - SSIM on luma (``quality.ssim``: Wang's window, the viewer's scale) between the image
before and after it, and, for effects SSIM does not see (colour only), the mean CIEDE2000 colour difference.
A step under the floor is drawn again, stronger, from its own stream (run seed, sample id, step): its record
holds the parameters actually applied, so a replay stays exact. A step invisible even at severity 1 on this
image (white balance on a grey picture) is dropped, and the sample says so."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from robustgen.degrade import registry
from robustgen.degrade.apply import plan_one, render
from robustgen.degrade.quality import LumaPlanes, ssim_planes
from robustgen.degrade.seeding import generator
from robustgen.schemas import AppliedDegradation
from robustgen.schemas.degradation import Visibility
from robustgen.schemas.recipe import VisibilityFloor

#: the longer side colour differences are measured at: a colour shift survives averaging down, and CIEDE2000 costs
#: 32 ms at 256 x 256 against 0.7 ms here
DELTA_E_SIDE = 48


def delta_e(before: np.ndarray, after: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference between two images averaged down to ``DELTA_E_SIDE`` (colour effects are
    broad; averaging only lowers what fine colour noise would add, so the floor errs towards stronger labels)."""
    from skimage.color import deltaE_ciede2000

    h, w = before.shape[:2]
    k = DELTA_E_SIDE / max(h, w)
    if k < 1:
        size = (max(1, round(w * k)), max(1, round(h * k)))
        before = cv2.resize(before, size, interpolation=cv2.INTER_AREA)
        after = cv2.resize(after, size, interpolation=cv2.INTER_AREA)
    return float(np.mean(deltaE_ciede2000(_lab(before), _lab(after))))


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
    de = None if drop >= floor.min_ssim_drop else delta_e(before, after)
    return Visibility(ssim_drop=round(drop, 5), delta_e=None if de is None else round(de, 4)), seen


def visible(v: Visibility, floor: VisibilityFloor) -> bool:
    return v.ssim_drop >= floor.min_ssim_drop or (v.delta_e is not None and v.delta_e >= floor.min_delta_e)


@dataclass
class Realized:
    """A plan as applied under the floor: the image, the records written (each with its measured effect), the
    names of planned degradations dropped as invisible, and how many steps were drawn again."""

    image: np.ndarray
    records: list[AppliedDegradation]
    dropped: list[str]
    redrawn: int


def realize(
    image: np.ndarray,
    records: list[AppliedDegradation],
    floor: VisibilityFloor,
    seed: int,
    sample_id: str,
    stream: str = "visible",
) -> Realized:
    """Apply ``records`` in order, each held to ``floor`` on the image it is applied to (see the module)."""
    out = image
    kept: list[AppliedDegradation] = []
    dropped: list[str] = []
    redrawn = 0
    planes = LumaPlanes(image) if floor.enabled and records else None
    for k, rec in enumerate(records):
        after = render(out, rec)
        if not floor.enabled:
            kept.append(rec)
            out = after
            continue
        seen, after_planes = effect(out, after, floor, planes)
        rng = None
        for attempt in range(floor.redraws + 1):
            if visible(seen, floor):
                break
            if attempt == floor.redraws:
                rec = None  # invisible at full strength on this image
                break
            rng = rng or generator(seed, f"{stream}:{sample_id}:{k}")
            # stronger each time, severity 1 last: the smallest change that shows is the likeliest to be kept
            last = attempt == floor.redraws - 1
            severity = 1.0 if last else round(rec.severity + (1.0 - rec.severity) * float(rng.uniform(0.3, 0.7)), 4)
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
    return Realized(out, kept, dropped, redrawn)
