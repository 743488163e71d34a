"""Pixel maths shared by degraders. uint8 RGB in and out unless a docstring says otherwise.

Sizes that degraders record are fractions of the image's shorter side, so one params record means
the same visual strength at any resolution; these helpers turn them into pixels.
"""

from __future__ import annotations

import math
from functools import cache

import cv2
import numpy as np
import stringzilla as sz

BORDER = cv2.BORDER_REFLECT_101


def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def short_side(image: np.ndarray) -> int:
    return min(image.shape[0], image.shape[1])


def frac_px(image: np.ndarray, frac: float) -> float:
    """A length given as a fraction of the shorter side, in pixels."""
    return frac * short_side(image)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """float32 -> uint8 with rounding and saturation (in place on ``values``)."""
    np.maximum(values, 0, out=values)
    return cv2.convertScaleAbs(values)


def _translate(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[image]`` by stringzilla's byte translation (~4x cv2.LUT on one thread), read once and written
    once into a fresh array (no copy first)."""
    src = np.ascontiguousarray(image)
    out = np.empty_like(src)
    if src.size:
        sz.translate(memoryview(src.reshape(-1)), table.tobytes(), out=memoryview(out.reshape(-1)))
    return out


def lut(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-value lookup; ``table`` is (256,) for all channels or (256, 3) per channel."""
    table = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    if table.ndim == 1:
        return _translate(image, table)
    return cv2.merge([_translate(image[:, :, c], table[:, c]) for c in range(3)])


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur. Sigmas above 2 px are blurred at reduced resolution and upscaled: the result has
    no detail finer than the sigma, so nothing is lost, and wide kernels stay cheap."""
    if sigma_px <= 0.05:
        return image.copy()
    h, w = image.shape[:2]
    if sigma_px <= 2.0 or min(h, w) < 16:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma_px, borderType=BORDER)
    scale = 2.0 / sigma_px
    # area downscaling already blurs by a box of 1/scale px (variance 1/(12 scale^2)); take it off
    rest = math.sqrt(max(sigma_px**2 - 1.0 / (12.0 * scale * scale), 0.25)) * scale
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=rest, borderType=BORDER)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def line_kernel(length_px: float) -> np.ndarray:
    """Centred 1-D box of (fractional) length ``length_px``: odd size, partial weight at both ends."""
    n = 2 * int(math.ceil((length_px - 1.0) / 2.0)) + 1
    k = np.ones(n, np.float32)
    if n > 1:
        k[0] = k[-1] = (length_px - (n - 2)) / 2.0
    return k / k.sum()


def directional_blur(image: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Box blur of ``length_px`` along a line at ``angle_deg`` (0 = horizontal, counter-clockwise).

    Done as rotate -> 1-D blur -> rotate back, which stays fast for long kernels where a 2-D
    ``filter2D`` would switch to FFT convolution.
    """
    if length_px <= 1.0:
        return image.copy()
    k = line_kernel(length_px)
    one = np.ones(1, np.float32)
    h, w = image.shape[:2]
    a = angle_deg % 180.0
    if a < 0.5 or a > 179.5:
        return cv2.sepFilter2D(image, -1, k, one, borderType=BORDER)
    if abs(a - 90.0) < 0.5:
        return cv2.sepFilter2D(image, -1, one, k, borderType=BORDER)
    pad = k.size // 2 + 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    ph, pw = padded.shape[:2]
    rad = math.radians(a)
    cw = int(math.ceil(abs(pw * math.cos(rad)) + abs(ph * math.sin(rad))))
    ch = int(math.ceil(abs(pw * math.sin(rad)) + abs(ph * math.cos(rad))))
    m = cv2.getRotationMatrix2D((pw / 2.0, ph / 2.0), -a, 1.0)
    m[0, 2] += (cw - pw) / 2.0
    m[1, 2] += (ch - ph) / 2.0
    rotated = cv2.warpAffine(padded, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    rotated = cv2.sepFilter2D(rotated, -1, k, one, borderType=BORDER)
    back = cv2.warpAffine(rotated, cv2.invertAffineTransform(m), (pw, ph), flags=cv2.INTER_LINEAR, borderMode=BORDER)
    return np.ascontiguousarray(back[pad : pad + h, pad : pad + w])


def disk_kernel(radius: float) -> np.ndarray:
    r = max(radius, 0.5)
    n = int(math.ceil(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float32)
    # anti-aliased disk: coverage falls off over one pixel at the rim
    k = np.clip(r + 0.5 - np.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def disk_blur(image: np.ndarray, radius_px: float) -> np.ndarray:
    """Defocus (disk) blur. Radii above 5 px are blurred at reduced resolution, then upscaled."""
    if radius_px < 0.5:
        return image.copy()
    h, w = image.shape[:2]
    if radius_px <= 5.0:
        return cv2.filter2D(image, -1, disk_kernel(radius_px), borderType=BORDER)
    scale = 5.0 / radius_px
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.filter2D(small, -1, disk_kernel(5.0), borderType=BORDER)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@cache
def _normal_quantiles() -> np.ndarray:
    from scipy.special import ndtri

    q = ndtri((np.arange(65536, dtype=np.float64) + 0.5) / 65536.0)
    return (q / q.std()).astype(np.float32)  # exactly unit variance over the table


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 standard normal samples, drawn as 16-bit uniform indices into the normal quantile table.

    3-4x faster than ``Generator.standard_normal`` at image sizes; the distribution is the normal one
    at 1/65536 quantile resolution (tails reach 4.3 sigma). Little-endian on every platform.
    """
    n = int(np.prod(shape))
    idx = np.frombuffer(rng.bytes(2 * n), dtype="<u2")
    return _normal_quantiles()[idx].reshape(shape)


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """float32 zero-mean Gaussian noise with standard deviation ``sigma``."""
    noise = standard_normal(rng, shape)
    noise *= np.float32(sigma)
    return noise


def gaussian_noise_int(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """int16 Gaussian noise, already rounded: for integer pixels, round(x + n) == x + round(n), so adding
    this equals adding float noise and rounding, at a fraction of the memory traffic."""
    table = np.clip(np.rint(_normal_quantiles() * np.float32(sigma)), -32767, 32767).astype(np.int16)
    idx = np.frombuffer(rng.bytes(2 * int(np.prod(shape))), dtype="<u2")
    return table[idx].reshape(shape)


def add_int_noise(image: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """uint8 image + int16 noise of the same shape, saturated to 0..255."""
    total = cv2.add(image, noise, dtype=cv2.CV_16S)
    np.maximum(total, 0, out=total)
    return cv2.convertScaleAbs(total)


def add_noise(image: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """image + float32 noise (broadcast over channels if 2-D), rounded and saturated."""
    out = image.astype(np.float32)
    if noise.ndim == 2:
        noise = noise[:, :, None]
    out += noise
    return to_uint8(out)


def smooth_field(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Smooth random field in [0, 1] (float32, HxW): ``cells`` random values across the shorter side,
    bicubically interpolated."""
    short = max(1, min(h, w))
    gh = max(2, int(round(cells * h / short)) + 1)
    gw = max(2, int(round(cells * w / short)) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, 0.0, 1.0)


def fractal_field(rng: np.random.Generator, h: int, w: int, base_cells: float, octaves: int = 4) -> np.ndarray:
    """Sum of smooth fields at doubling frequencies, normalised to [0, 1] (clouds, smoke, frost)."""
    total = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for i in range(octaves):
        total += np.float32(amp) * smooth_field(rng, h, w, base_cells * 2**i)
        norm += amp
        amp *= 0.5
    total /= np.float32(norm)
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / np.float32(max(hi - lo, 1e-6))


def blend(image: np.ndarray, other: np.ndarray, weight: np.ndarray | float) -> np.ndarray:
    """image * (1 - weight) + other * weight; ``weight`` a scalar or an HxW float32 map in [0, 1]."""
    if np.isscalar(weight):
        return cv2.addWeighted(image, 1.0 - float(weight), other, float(weight), 0.0)
    wmap = np.ascontiguousarray(weight, dtype=np.float32)
    if other.ndim == 1 or (other.ndim == 3 and other.shape[:2] != image.shape[:2]):
        other = np.broadcast_to(np.asarray(other, np.uint8).reshape(1, 1, 3), image.shape).copy()
    return cv2.blendLinear(image, other, 1.0 - wmap, wmap)


def solid(image: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    """An image-sized uint8 plane of one colour (one row filled, then repeated: 30x faster than a broadcast)."""
    px = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.full(image.shape, px[0], np.uint8)
    row = np.empty((1, image.shape[1], image.shape[2]), np.uint8)
    row[:] = px[: image.shape[2]]
    return np.repeat(row, image.shape[0], axis=0)


def screen(image: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Screen blend: 255 - (255 - a)(255 - b)/255; adds light without clipping to flat white."""
    inv = cv2.multiply(cv2.bitwise_not(image), cv2.bitwise_not(light), scale=1.0 / 255.0)  # ~x == 255 - x
    return cv2.bitwise_not(inv)


def screen_under(inverse: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Screen blend of an RGB image given as its inverse (``255 - image``, which callers often get in the same
    pass that makes the image) and a one-channel ``light`` layer: the light's inversion runs on one channel."""
    inv_light = cv2.cvtColor(cv2.bitwise_not(light), cv2.COLOR_GRAY2RGB)
    return cv2.bitwise_not(cv2.multiply(inverse, inv_light, scale=1.0 / 255.0))


def magnify(image: np.ndarray, mag: float, cx: float, cy: float) -> np.ndarray:
    """Zoom in by ``mag`` >= 1 about (cx, cy), same size out. Resize-and-crop (3x cheaper than a warp);
    the centre lands within half a pixel of where it should."""
    h, w = image.shape[:2]
    nw, nh = max(w, int(math.ceil(w * mag))), max(h, int(math.ceil(h * mag)))
    if (nw, nh) == (w, h):
        return image.copy()
    big = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x0 = min(max(0, int(round(cx * (nw / w - 1.0)))), nw - w)
    y0 = min(max(0, int(round(cy * (nh / h - 1.0)))), nh - h)
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def resize(image: np.ndarray, w: int, h: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.resize(image, (max(1, int(w)), max(1, int(h))), interpolation=interpolation)


def low_res_shape(h: int, w: int, max_side: int = 256) -> tuple[int, int]:
    """A shape no larger than ``max_side`` with the same aspect, for smooth overlays."""
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def jpeg_roundtrip(image: np.ndarray, quality: int, ext: str = ".jpg") -> np.ndarray:
    """Encode + decode with OpenCV (RGB in, RGB out) at ``quality``."""
    flag = cv2.IMWRITE_WEBP_QUALITY if ext == ".webp" else cv2.IMWRITE_JPEG_QUALITY
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, bgr, [flag, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise RuntimeError(f"OpenCV failed to encode {ext}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def gamma_table(gamma: float, gain: float = 1.0) -> np.ndarray:
    x = np.arange(256, dtype=np.float64) / 255.0
    return 255.0 * gain * np.power(x, gamma)


def luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def radial_distance(h: int, w: int, cx: float, cy: float) -> np.ndarray:
    """Distance of each pixel (float32 HxW) from (cx, cy) given in pixels, divided by the half diagonal."""
    ys = (np.arange(h, dtype=np.float32) - np.float32(cy))[:, None]
    xs = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, :]
    d = np.sqrt(xs * xs + ys * ys)
    d /= np.float32(max(1.0, 0.5 * math.hypot(h, w)))
    return d


def soft_mask_from_layer(layer: np.ndarray, feather_px: float) -> np.ndarray:
    """uint8 0/255 mask -> float32 [0, 1] with feathered edges."""
    m = layer.astype(np.float32) / 255.0
    if feather_px > 0.3:
        m = cv2.GaussianBlur(m, (0, 0), feather_px, borderType=BORDER)
    return m


def fill_frame_scale(w: int, h: int, angle_deg: float) -> float:
    """The zoom that makes an image rotated by ``angle_deg`` cover its whole frame (no border shows)."""
    a = math.radians(abs(angle_deg))
    c, s = math.cos(a), math.sin(a)
    return max((w * c + h * s) / w, (w * s + h * c) / h)


def warp_affine(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=BORDER)
