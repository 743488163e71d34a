"""Fidelity of a degraded image against its clean original: PSNR and SSIM."""

from __future__ import annotations

import math

import cv2
import numpy as np


def psnr(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all channels, capped at 100.0 (identical images): an image one
    value off would otherwise score above an identical one."""
    squared = cv2.norm(clean, degraded, cv2.NORM_L2SQR)  # one pass: no separate equality test
    if squared == 0:
        return 100.0
    return min(100.0, float(10.0 * np.log10(255.0**2 * clean.size / squared)))


_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def ssim(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) on the luma channel.

    As in the reference implementation (ssim.m), images are first averaged down by
    ``f = max(1, round(min(h, w) / 256))`` so the window sees the scale a viewer does (``viewer_luma``).
    Separable OpenCV Gaussians in float32; at f = 1 within about 0.01 of scikit-image (borders reflected, not
    cropped).
    """
    f = wang_factor(clean)
    a, b = viewer_luma(clean, f), viewer_luma(degraded, f)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    # four blurs, not five (the blur is linear: one of a^2 + b^2 stands for two), and the arithmetic in place:
    # 0.84 -> 0.64 ms at 512 px, the same values to 1e-6
    mu_a, mu_b, s_ab = blur(a), blur(b), blur(a * b)
    s_sq = blur(np.add(np.multiply(a, a, out=a), np.multiply(b, b, out=b), out=a))  # E[a^2] + E[b^2]
    mu_ab = mu_a * mu_b
    mu_sq = np.add(np.multiply(mu_a, mu_a, out=mu_a), np.multiply(mu_b, mu_b, out=mu_b), out=mu_a)
    s_ab -= mu_ab  # the covariance
    s_sq -= mu_sq  # var_a + var_b
    mu_ab *= 2
    mu_ab += _C1
    s_ab *= 2
    s_ab += _C2
    mu_ab *= s_ab  # numerator: (2 mu_a mu_b + C1)(2 cov + C2)
    mu_sq += _C1
    s_sq += _C2
    mu_sq *= s_sq  # denominator: (mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)
    return float(cv2.mean(np.divide(mu_ab, mu_sq, out=mu_ab))[0])


def wang_factor(image: np.ndarray) -> int:
    """ssim.m's averaging-down factor for an image: ``max(1, round(min(h, w) / 256))``, rounding halves up as
    MATLAB does (a 640 px side is averaged by 3, not by Python's round-half-even 2)."""
    return max(1, math.floor(min(image.shape[:2]) / 256 + 0.5))


def viewer_luma(image: np.ndarray, f: int) -> np.ndarray:
    """The luma of a uint8 RGB image averaged over ``f`` x ``f`` blocks, in float32 (ssim.m's averaging down). A
    power-of-two ``f`` that divides both sides is done as repeated halvings, which OpenCV's area average runs about
    4x faster than one step of 4 and which give the same block means; any other ``f`` in one step."""
    y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if f == 1:
        return y
    h, w = y.shape
    if f & (f - 1) == 0 and h % f == 0 and w % f == 0:
        while f > 1:
            y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
            f //= 2
        return y
    return cv2.resize(y, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)


class LumaPlanes:
    """An image as ``ssim`` sees it (``viewer_luma``), with its local mean, squared mean and variance: computed once
    when an image is compared with several others (each step of a plan with the one before), so a comparison costs
    one more blur (the cross term) and a few array operations."""

    __slots__ = ("f", "y", "mu", "mu2", "var")

    def __init__(self, image: np.ndarray, f: int | None = None) -> None:
        self.f = f if f is not None else wang_factor(image)
        self.y = viewer_luma(image, self.f)
        self.mu = _blur(self.y)
        self.mu2 = cv2.multiply(self.mu, self.mu)
        sq = _blur(cv2.multiply(self.y, self.y))
        self.var = cv2.subtract(sq, self.mu2, dst=sq)


def _blur(x: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    return cv2.GaussianBlur(x, (11, 11), 1.5, dst=dst, borderType=cv2.BORDER_REFLECT)


def ssim_planes(a: LumaPlanes, b: LumaPlanes) -> float:
    """``ssim`` of the two images the planes were made from (the same value, to float32 rounding: within 1e-5).
    One blur and nine passes (``addWeighted`` folds a sum, a scale and a constant into one), in place in three
    arrays: a comparison allocates less (fresh pages cost more than the arithmetic at 256 x 256)."""
    t = cv2.multiply(a.y, b.y)
    _blur(t, dst=t)  # E[ab]
    num = cv2.multiply(a.mu, b.mu, scale=2.0)  # 2 mu_a mu_b
    cv2.addWeighted(t, 2.0, num, -1.0, _C2, dst=t)  # 2 cov + C2
    cv2.add(num, _C1, dst=num)
    cv2.multiply(num, t, dst=num)  # (2 mu_a mu_b + C1)(2 cov + C2)
    den = cv2.addWeighted(a.mu2, 1.0, b.mu2, 1.0, _C1)
    cv2.addWeighted(a.var, 1.0, b.var, 1.0, _C2, dst=t)
    cv2.multiply(den, t, dst=den)  # (mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)
    return float(cv2.mean(cv2.divide(num, den, dst=num))[0])
