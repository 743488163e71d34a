"""Fidelity of a degraded image against its clean original: PSNR and SSIM."""

from __future__ import annotations

import cv2
import numpy as np


def psnr(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all channels, capped at 100.0 (identical images): an image one
    value off would otherwise score above an identical one."""
    squared = cv2.norm(clean, degraded, cv2.NORM_L2SQR)  # one pass: no separate equality test
    if squared == 0:
        return 100.0
    return min(100.0, float(10.0 * np.log10(255.0**2 * clean.size / squared)))


def ssim(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) on the luma channel.

    As in the reference implementation (ssim.m), images are first averaged down by
    ``f = max(1, round(min(h, w) / 256))`` so the window sees the scale a viewer does. Separable OpenCV
    Gaussians in float32; at f = 1 within about 0.01 of scikit-image (borders reflected, not cropped).
    """
    a = cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(degraded, cv2.COLOR_RGB2GRAY)
    f = max(1, round(min(a.shape) / 256))
    if f > 1:
        size = (max(1, a.shape[1] // f), max(1, a.shape[0] // f))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    a, b = a.astype(np.float32), b.astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = blur(a * a) - mu_aa
    var_b = blur(b * b) - mu_bb
    cov = blur(a * b) - mu_ab
    num = (2 * mu_ab + c1) * (2 * cov + c2)
    den = (mu_aa + mu_bb + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))
