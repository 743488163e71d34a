"""Shared fixtures: the colour photos scikit-image ships, downsized so the suite stays quick."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

PHOTOS = ("astronaut", "coffee", "chelsea")


def _small(img: np.ndarray, side: int = 160) -> np.ndarray:
    h, w = img.shape[:2]
    s = side / max(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: _small(getattr(data, name)()) for name in PHOTOS}


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return _small(data.astronaut())
