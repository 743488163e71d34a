"""Source files of every format, built from the photos scikit-image ships, plus broken rows."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import cv2
import pytest

from robustgen.images import load_image, write_image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def bomb_png(path: Path, w: int = 30000, h: int = 30000) -> None:
    """A tiny PNG whose header claims w x h pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("images")
    for name in PHOTOS:
        img = load_image(f"skimage:{name}")
        write_image(d / f"{name}.jpg", cv2.resize(img, (160, 120)))
    return d


@pytest.fixture
def good_jsonl(image_dir, tmp_path) -> Path:
    rows = []
    for i in range(12):
        name = PHOTOS[i % len(PHOTOS)]
        rows.append(
            {
                "id": f"q{i:03d}",
                "image": str(image_dir / f"{name}.jpg"),
                "question": f"Is this a {name}?",
                "answer": "1",
                "choices": ["no", "yes"],
                "rationale": f"The photo shows the {name} scene.",
            }
        )
    src = tmp_path / "src"
    src.mkdir()
    for name in PHOTOS:
        (src / f"{name}.jpg").write_bytes((image_dir / f"{name}.jpg").read_bytes())
    for r in rows:
        r["image"] = Path(r["image"]).name
    p = src / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.fixture
def bad_jsonl(good_jsonl) -> Path:
    """The good rows plus one of every kind of broken row."""
    src = good_jsonl.parent
    (src / "zero.jpg").write_bytes(b"")
    (src / "notimage.jpg").write_bytes(b"hello, I am text")
    full = (src / "coffee.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(full[: len(full) // 2])
    bomb_png(src / "bomb.png")
    (src.parent / "outside.jpg").write_bytes(full)
    bad = [
        {"id": "zero", "image": "zero.jpg", "question": "q?", "answer": "a"},
        {"id": "notimage", "image": "notimage.jpg", "question": "q?", "answer": "a"},
        {"id": "truncated", "image": "truncated.jpg", "question": "q?", "answer": "a"},
        {"id": "missing", "image": "nowhere.jpg", "question": "q?", "answer": "a"},
        {"id": "bomb", "image": "bomb.png", "question": "q?", "answer": "a"},
        {"id": "escape", "image": "../outside.jpg", "question": "q?", "answer": "a"},
        {"id": "absolute", "image": str(src.parent / "outside.jpg"), "question": "q?", "answer": "a"},
        {"id": "noquestion", "image": "coffee.jpg", "answer": "a"},
    ]
    with good_jsonl.open("a") as f:
        for r in bad:
            f.write(json.dumps(r) + "\n")
        f.write('{"id": "broken", "image": "coffee.jpg", \n')
    return good_jsonl


@pytest.fixture
def vlmeval_tsv(image_dir, tmp_path) -> Path:
    lines = ["index\timage\tquestion\tA\tB\tC\tD\tanswer\tcategory"]
    for i, name in enumerate(PHOTOS):
        b64 = base64.b64encode((image_dir / f"{name}.jpg").read_bytes()).decode()
        lines.append(f"{i}\t{b64}\tWhich photo is this?\tastronaut\tcoffee\tchelsea\trocket\t{'ABCD'[i]}\tcat{i}")
    p = tmp_path / "Bench.tsv"
    p.write_text("\n".join(lines) + "\n")
    return p
