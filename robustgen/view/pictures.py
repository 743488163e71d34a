"""The images the viewer serves: files a record names (read through the one path rule, never through a link),
thumbnails made on demand and kept in memory within a byte bound, and images rendered from records (the clean
image, each degradation step, the explorer's)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robustgen.images import decode, encode
from robustgen.schemas.paths import plain_file_under

THUMB_SIDE = 192
MEDIA = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class Bounded:
    """Least-recently-used values (bytes or arrays), at most ``limit`` bytes of them in all (thread-safe: the server
    answers from a pool)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _size(value: Any) -> int:
        return value.nbytes if isinstance(value, np.ndarray) else len(value)

    def peek(self, key: str) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: str, value: Any) -> None:
        size = self._size(value)
        with self._lock:
            if key in self._items or size > self.limit:
                return
            self._items[key] = value
            self.size += size
            while self.size > self.limit:
                _, old = self._items.popitem(last=False)
                self.size -= self._size(old)

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        found = self.peek(key)
        if found is not None:
            return found
        value = make()
        self.put(key, value)
        return value


def file_bytes(root: Path, rel: str) -> tuple[bytes, str]:
    """The bytes and media type of the image file ``rel`` below ``root``: a regular file with no link on its path and
    an image suffix, else ``ValueError``."""
    media = MEDIA.get(Path(rel).suffix.lower())
    if media is None:
        raise ValueError(f"{rel}: not an image file")
    return plain_file_under(root, rel).read_bytes(), media


def thumbnail(data: bytes, where: str) -> bytes:
    """A JPEG whose longer side is at most ``THUMB_SIDE``."""
    img = decode(data, where)
    h, w = img.shape[:2]
    k = THUMB_SIDE / max(h, w)
    if k < 1:
        img = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return encode(img, "jpg", quality=85)


def png(img: np.ndarray) -> bytes:
    return encode(img, "png")
