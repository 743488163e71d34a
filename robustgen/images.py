"""Every image read and written by robustgen goes through here: conversion of any array to the working
format (uint8 RGB, HxWx3), decoding with one set of guards (size limit before decoding, regular files only,
truncation), encoding, data URLs, and the images scikit-image ships.

Rules (documented in the README):
- grayscale (H, W) or (H, W, 1): the gray value is copied to R, G and B;
- gray + alpha (H, W, 2) and RGBA (H, W, 4): composited over a white background, alpha dropped;
- uint16: scaled to 0..255 (value / 257, rounded); other integer types must already lie in 0..255;
- float: taken as 0..1 (values outside are clipped) and scaled to 0..255, rounded;
- bool: False -> 0, True -> 255.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
from pathlib import Path

import cv2
import numpy as np

from robustgen.errors import ImageError, first_line

MIN_SIDE = 1
#: images above this many pixels are refused before decoding (decompression-bomb guard)
MAX_PIXELS = 50_000_000


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


def _header_size(data: bytes, where: str) -> tuple[int, int] | None:
    """(width, height) from the header alone, refusing decompression bombs; None when PIL cannot tell."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise ImageError(f"{where}: image is too large to decode safely (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError):
        return None
    if w * h > MAX_PIXELS:
        raise ImageError(f"{where}: {w}x{h} pixels exceeds the {MAX_PIXELS // 1_000_000} MP safety limit")
    return w, h


def _jpeg_complete(data: bytes) -> bool:
    """A JPEG whose end-of-image marker is present (OpenCV decodes a truncated JPEG without complaint)."""
    return not data.startswith(b"\xff\xd8") or data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def _decode_pil(data: bytes, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGB")
            elif im.mode == "F":
                im = im.convert("L")
            return np.asarray(im)
    except Image.DecompressionBombError:
        raise ImageError(f"{where}: image is too large to decode safely (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = first_line(exc)
        if "truncated" in msg:
            raise ImageError(f"{where}: truncated image ({msg})") from None
        raise ImageError(f"{where}: not a readable image ({msg})") from None


def decode(data: bytes, where: str = "image") -> np.ndarray:
    """Encoded image bytes -> uint8 RGB. The header is checked first (over ``MAX_PIXELS``: refused before any
    pixel is decoded); OpenCV decodes, Pillow takes what OpenCV cannot (and tells a truncated JPEG).
    Empty, truncated, non-image and oversized data raise ``ImageError`` naming ``where``."""
    if not data:
        raise ImageError(f"{where}: empty file")
    if _header_size(data, where) is None:
        raise ImageError(f"{where}: not a readable image (unknown format)")
    decoded = None
    if _jpeg_complete(data):
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return to_rgb_uint8(_decode_pil(data, where), where=where)
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    elif decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    return to_rgb_uint8(decoded, where=where)


def read_bytes(path: str | Path, where: str | None = None) -> bytes:
    """The bytes of a regular file (never a FIFO, device or folder); ``ImageError`` naming it otherwise."""
    where = where or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{where}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{where}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{where}: not a regular file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ImageError(f"{where}: cannot read ({exc.strerror})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB; ``ImageError`` naming the file when it cannot be read."""
    return decode(read_bytes(path), str(path))


def encode(image: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """uint8 RGB -> encoded bytes; ``fmt`` png (lossless, fast compression), jpg/jpeg or webp at ``quality``."""
    fmt = fmt.lower().lstrip(".")
    if fmt in ("jpg", "jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(f".{fmt}", bgr, params)
    if not ok:
        raise ImageError(f"could not encode an image as {fmt}")
    return buf.tobytes()


def write_image(path: str | Path, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write uint8 RGB to ``path``; the format follows the suffix (.png lossless, .jpg, .webp)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(image, path.suffix or ".png", jpeg_quality))


def data_url(image: np.ndarray, max_side: int, quality: int = 90) -> tuple[str, str]:
    """(JPEG data URL, sha256 of its bytes) after resizing the longer side to at most ``max_side``."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    data = encode(image, "jpg", quality)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), hashlib.sha256(data).hexdigest()


def pixel_sha256(image: np.ndarray) -> str:
    """Hash of the decoded pixels and shape (not of any file encoding)."""
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
        if name not in SAMPLE_IMAGES:  # never call an arbitrary skimage.data attribute (some download)
            raise ImageError(f"{text}: not one of the photos scikit-image ships (use {', '.join(SAMPLE_IMAGES)})")
        import skimage.data

        return to_rgb_uint8(getattr(skimage.data, name)(), where=text)
    return read_image(text)
