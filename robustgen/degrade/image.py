"""Conversion of any image array to the working format (uint8 RGB, HxWx3) and image file I/O.

Rules (documented in the README):
- grayscale (H, W) or (H, W, 1): the gray value is copied to R, G and B;
- gray + alpha (H, W, 2) and RGBA (H, W, 4): composited over a white background, alpha dropped;
- uint16: scaled to 0..255 (value / 257, rounded); other integer types must already lie in 0..255;
- float: taken as 0..1 (values outside are clipped) and scaled to 0..255, rounded;
- bool: False -> 0, True -> 255.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from robustgen.errors import ImageError

MIN_SIDE = 1


def to_rgb_uint8(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous uint8 RGB array (H, W, 3), following the module's rules."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{where}: expected (H, W), (H, W, 1|2|3|4), got shape {arr.shape}")
    if arr.shape[0] < MIN_SIDE or arr.shape[1] < MIN_SIDE:
        raise ImageError(f"{where}: empty image of shape {arr.shape}")
    arr = _to_unit_float_or_uint8(arr, where)
    channels = arr.shape[2]
    if channels in (2, 4):
        color, alpha = arr[:, :, :-1], arr[:, :, -1:]
        if arr.dtype == np.uint8:
            a = alpha.astype(np.float32) / 255.0
            color = color.astype(np.float32) / 255.0
        else:
            a = alpha.astype(np.float32)
            color = color.astype(np.float32)
        arr = color * a + (1.0 - a)  # over white
        channels -= 1
    if arr.dtype != np.uint8:
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def _to_unit_float_or_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        return np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ImageError(
                f"{where}: {arr.dtype} values span {lo}..{hi}; integer images other than uint16 must lie in 0..255"
            )
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(f"{where}: float image contains NaN or infinity")
        return arr.astype(np.float32)
    raise ImageError(f"{where}: unsupported dtype {arr.dtype}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB; ``ImageError`` naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ImageError(f"{path}: not a readable image")
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    elif decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    return to_rgb_uint8(decoded, where=str(path))


def write_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write uint8 RGB to ``path``; the format follows the suffix (.png lossless, .jpg, .webp)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params: list[int] = []
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]
    ok, buf = cv2.imencode(suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"{path}: could not encode as {suffix}")
    buf.tofile(path)


def pixel_sha256(image: np.ndarray) -> str:
    """Hash of the decoded pixels and shape (not of any file encoding)."""
    import hashlib

    h = hashlib.sha256(f"{image.shape}|{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


#: colour photographs that scikit-image ships inside its wheel (no download needed)
SAMPLE_IMAGES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
)
SAMPLE_PREFIX = "skimage:"


def load_image(ref: str | Path) -> np.ndarray:
    """Read an image file, or ``skimage:NAME`` for one of the images scikit-image ships."""
    text = str(ref)
    if text.startswith(SAMPLE_PREFIX):
        name = text[len(SAMPLE_PREFIX) :]
        import skimage.data

        loader = getattr(skimage.data, name, None)
        if loader is None or name.startswith("_"):
            raise ImageError(f"{text}: scikit-image ships no image called {name!r} (try {', '.join(SAMPLE_IMAGES)})")
        return to_rgb_uint8(loader(), where=text)
    return read_image(text)
