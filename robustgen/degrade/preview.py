"""Contact sheets: one row per degrader, one column per severity, labelled."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from robustgen.degrade import registry
from robustgen.degrade.apply import degrade_image
from robustgen.degrade.calibration import calibrated_severity, shipped_table
from robustgen.images import to_rgb_uint8

PREVIEW_SEVERITIES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _put(canvas: np.ndarray, text: str, x: int, y: int, scale: float, color=(20, 20, 20), thick: int = 1) -> None:
    cv2.putText(canvas, text, (x, y), _FONT, scale, color, thick, cv2.LINE_AA)


def contact_sheet(
    image: np.ndarray,
    names: Sequence[str] | None = None,
    severities: Sequence[float] = PREVIEW_SEVERITIES,
    seed: int = 0,
    cell: int = 192,
    calibrated: bool = False,
) -> np.ndarray:
    """uint8 RGB grid: a clean column, then the image degraded at each severity, per degrader.

    The image is resized so its longer side is ``cell`` before degrading, so each tile shows the
    degradation at the size it is seen.
    """
    rgb = to_rgb_uint8(image)
    h, w = rgb.shape[:2]
    scale = cell / max(h, w)
    th, tw = max(8, round(h * scale)), max(8, round(w * scale))
    tile_src = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
    chosen = [registry.get(n) for n in names] if names else registry.degraders()
    label_w, head_h, pad = 230, 34, 6
    cols = 1 + len(severities)
    sheet_h = head_h + len(chosen) * (th + pad) + pad
    sheet_w = label_w + cols * (tw + pad) + pad
    sheet = np.full((sheet_h, sheet_w, 3), 250, np.uint8)
    headers = ["clean"] + [f"{'calibrated ' if calibrated else 'severity '}{s:g}" for s in severities]
    for c, text in enumerate(headers):
        _put(sheet, text, label_w + c * (tw + pad) + pad, head_h - 12, 0.5)
    for r, d in enumerate(chosen):
        y = head_h + r * (th + pad) + pad
        _put(sheet, d.name, 8, y + th // 2 - 4, 0.52, thick=1)
        _put(sheet, f"{d.label} / {d.stage.value}", 8, y + th // 2 + 16, 0.4, color=(90, 90, 90))
        own = [calibrated_severity(shipped_table(), d.name, s) for s in severities] if calibrated else list(severities)
        tiles = [tile_src] + [degrade_image(tile_src, d.name, s, seed=seed)[0] for s in own]
        for c, tile in enumerate(tiles):
            x = label_w + c * (tw + pad) + pad
            sheet[y : y + th, x : x + tw] = tile
    return sheet
