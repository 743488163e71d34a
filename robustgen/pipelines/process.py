"""Per-sample work done inside Ray tasks and actors: decode, plan, degrade, write, annotate, record."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import cv2
import numpy as np
from PIL import Image

from robustgen.annotate.base import TeacherFailure, TeacherInput
from robustgen.degrade.apply import replay
from robustgen.degrade.image import SAMPLE_PREFIX, load_image, to_rgb_uint8
from robustgen.degrade.quality import psnr, ssim
from robustgen.degrade.recipes import Recipe
from robustgen.errors import ImageError, RobustgenError
from robustgen.pipelines.output import DATA_DIR, WORK_DIR, Output, image_relpath, shard_name
from robustgen.schemas import AppliedDegradation, LengthBand, render_chain

#: images above this many pixels are refused before decoding (decompression-bomb guard)
MAX_PIXELS = 50_000_000


def decode_bytes(data: bytes, where: str) -> np.ndarray:
    """Decode image bytes to uint8 RGB; truncated, non-image and oversized data raise ``ImageError``."""
    if not data:
        raise ImageError(f"{where}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{where}: {w}x{h} pixels exceeds the {MAX_PIXELS // 1_000_000} MP safety limit")
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGB")
            elif im.mode == "F":
                im = im.convert("L")
            arr = np.asarray(im)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{where}: image is too large to decode safely (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in msg:
            raise ImageError(f"{where}: truncated image ({msg})") from None
        raise ImageError(f"{where}: not a readable image ({msg})") from None
    return to_rgb_uint8(arr, where=where)


def load_row_image(row: dict[str, Any]) -> np.ndarray:
    if "image_b64" in row:
        try:
            data = base64.b64decode(row["image_b64"], validate=False)
        except ValueError:
            raise ImageError(f"{row['source']}: the image column is not valid base64") from None
        return decode_bytes(data, row["source"])
    ref = row["image"]
    if ref.startswith(SAMPLE_PREFIX):
        return load_image(ref)
    try:
        with open(ref, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError(f"{ref}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{ref}: cannot read ({exc.strerror})") from None
    return decode_bytes(data, ref)


def encode_image(image: np.ndarray, fmt: str) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(f".{fmt}", bgr, params)
    if not ok:  # pragma: no cover
        raise ImageError(f"could not encode a {fmt} image")
    return buf.tobytes()


def failure(row: dict[str, Any], stage: str, reason: str, usage: dict | None = None) -> dict[str, Any]:
    out = {"id": row["id"], "source": row.get("source", ""), "stage": stage, "reason": " ".join(reason.split())}
    if usage:
        out["usage"] = usage
    return out


def degrade_row(row: dict[str, Any], recipe: Recipe, seed: int, out: Output, image_format: str) -> dict[str, Any]:
    """Decode, plan, degrade, write the degraded image; returns the partial record or a failure."""
    try:
        clean = load_row_image(row)
        plan = recipe.sample(seed=seed, sample_id=row["id"])
        degraded = replay(clean, plan.degradations)
        rel = image_relpath(row["id"], image_format)
        out.write_bytes(rel, encode_image(degraded, image_format))
    except RobustgenError as exc:
        return {"failure": failure(row, "degrade", str(exc))}
    except OSError as exc:
        return {"failure": failure(row, "write", f"could not write the image: {exc}")}
    h, w = clean.shape[:2]
    source_image = row.get("image") or f"{row['source']} (embedded)"
    return {
        "id": row["id"],
        "image": rel,
        "source_image": source_image,
        "source": row.get("source", ""),
        "width": w,
        "height": h,
        "question": row["question"],
        "answer": row.get("answer"),
        "choices": row.get("choices"),
        "rationale": row.get("rationale"),
        "degradations": [d.model_dump(mode="json") for d in plan.degradations],
        "quality": {"psnr": round(psnr(clean, degraded), 4), "ssim": round(ssim(clean, degraded), 6)},
    }


def teacher_input(
    rec: dict[str, Any], band: LengthBand, out: Output, images: bool, row: dict[str, Any]
) -> TeacherInput:
    clean = degraded = None
    if images:
        clean = load_row_image(row)
        degraded = decode_bytes(out.read_bytes(rec["image"]), rec["image"])
    return TeacherInput(
        sample_id=rec["id"],
        clean=clean,
        degraded=degraded,
        degradations=[AppliedDegradation.model_validate(d) for d in rec["degradations"]],
        question=rec["question"],
        answer=rec["answer"] or "",
        choices=rec["choices"],
        rationale=rec["rationale"],
        band=band,
        fresh=bool(row.get("retry")),
    )


async def annotate_all(teacher, items: list[tuple[dict, dict]], band: LengthBand, out: Output, images: bool):
    """Annotate (record, row) pairs concurrently; returns records (with chain) or failures, in order."""

    async def one(rec: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        try:
            item = teacher_input(rec, band, out, images, row)
            result = await teacher.annotate(item)
        except TeacherFailure as exc:
            return {"failure": failure(row, exc.stage, exc.reason, exc.usage.model_dump())}
        except RobustgenError as exc:
            return {"failure": failure(row, "annotate", str(exc))}
        except Exception as exc:  # a bug must cost one row, not the run
            return {"failure": failure(row, "internal", f"{type(exc).__name__}: {exc}")}
        usage = result.usage.model_dump()
        return {
            **rec,
            "chain": result.chain.model_dump(mode="json"),
            "response": render_chain(result.chain),
            "teacher": {**result.teacher.model_dump(), "usage": usage},
        }

    return await asyncio.gather(*(one(rec, row) for rec, row in items))


def write_batch(out: Output, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write one data shard and one failure shard for a batch (atomically); returns progress rows."""
    records = [r for r in results if "failure" not in r]
    fails = [r["failure"] for r in results if "failure" in r]
    if records:
        lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        out.write_text(f"{DATA_DIR}/{shard_name([r['id'] for r in records], 'part')}", lines)
    if fails:
        lines = "".join(json.dumps(f, ensure_ascii=False, sort_keys=True) + "\n" for f in fails)
        out.write_text(f"{WORK_DIR}/failures/{shard_name([f['id'] for f in fails], 'fail')}", lines)
    progress = []
    for r in results:
        usage = (r.get("teacher") or {}).get("usage") or (r.get("failure") or {}).get("usage") or {}
        progress.append(
            {
                "id": r["id"] if "failure" not in r else r["failure"]["id"],
                "ok": "failure" not in r,
                "tokens": int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
                "cost": float(usage.get("cost_usd", 0.0)),
            }
        )
    return progress
