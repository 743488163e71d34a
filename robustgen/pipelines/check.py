"""``robustgen check``: will every record of a dataset survive training on a given model family? Per record the
image token count by that family's own resizing rule, prompt and chain lengths (a tokenizer when given, an
estimate otherwise), and ``<image>`` literals inside any text (the commonest "number of images does not match
number of <image> tokens" failure)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from robustgen.errors import RobustgenError, choice_error
from robustgen.pipelines.dataset import Dataset
from robustgen.schemas import DatasetRecord
from robustgen.schemas.chain import ROBUST_R1_INSTRUCTION, question_text

FAMILIES = ("qwen2-vl", "qwen2.5-vl", "internvl", "llava")
QWEN_FACTOR = 28  # 14 px patches merged 2 x 2
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384  # the processors' default


def qwen_resize(
    h: int, w: int, min_pixels: int = QWEN_MIN_PIXELS, max_pixels: int = QWEN_MAX_PIXELS
) -> tuple[int, int]:
    """Qwen2-VL / Qwen2.5-VL's smart resize: both sides multiples of 28, the area inside [min, max] pixels."""
    f = QWEN_FACTOR
    hb, wb = max(f, round(h / f) * f), max(f, round(w / f) * f)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb, wb = max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    return hb, wb


def internvl_tiles(h: int, w: int, max_num: int = 12, size: int = 448) -> int:
    """InternVL's dynamic tiling: the tile grid (``size`` px tiles, at most ``max_num``) whose aspect ratio is
    closest to the image's, a larger grid winning a tie only when the image has the pixels for it; plus a
    thumbnail when there is more than one tile."""
    aspect = w / h
    grids = sorted(
        {(i, j) for n in range(1, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if i * j <= max_num},
        key=lambda g: g[0] * g[1],
    )
    best, best_diff = (1, 1), float("inf")
    for i, j in grids:
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and w * h > 0.5 * size * size * i * j:
            best = (i, j)
    n = best[0] * best[1]
    return n + 1 if n > 1 else n


def image_tokens(family: str, h: int, w: int, max_pixels: int | None = None) -> int:
    if family in ("qwen2-vl", "qwen2.5-vl"):
        hb, wb = qwen_resize(h, w, max_pixels=max_pixels or QWEN_MAX_PIXELS)
        return (hb // QWEN_FACTOR) * (wb // QWEN_FACTOR)
    if family == "internvl":
        return 256 * internvl_tiles(h, w)
    if family == "llava":
        return 576  # LLaVA-1.5: one 336 px view, 24 x 24 patches
    raise choice_error("--for", family, FAMILIES)


@dataclass
class CheckReport:
    family: str
    records: int = 0
    broken: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    max_image_tokens: int = 0
    max_prompt: int = 0
    max_completion: int = 0
    estimated: bool = True


def _counter(tokenizer: str | None):
    if tokenizer is None:
        return lambda text: math.ceil(len(text) / 4), True  # the usual 4 characters per token
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise RobustgenError(f"--tokenizer needs the train extra (transformers): {exc}") from None
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError) as exc:
        raise RobustgenError(f"--tokenizer {tokenizer}: cannot load it ({' '.join(str(exc).split())[:200]})") from None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"]), False


def _texts(rec: DatasetRecord) -> dict[str, str]:
    return {
        "question": rec.question,
        "choices": " ".join(rec.choices or []),
        "response": rec.response,
    }


def check_dataset(
    root: str | Path,
    family: str,
    max_pixels: int | None = None,
    max_prompt_length: int | None = None,
    max_completion_length: int | None = None,
    tokenizer: str | None = None,
) -> CheckReport:
    if family not in FAMILIES:
        raise choice_error("--for", family, FAMILIES)
    ds = Dataset.open(root)
    count, estimated = _counter(tokenizer)
    rep = CheckReport(family=family, estimated=estimated)
    for rec in ds.iter_records():
        rep.records += 1
        try:
            sizes = []
            for f in rec.images_in(ds.root):
                with Image.open(f) as im:
                    sizes.append(im.size)
        except Exception as exc:  # noqa: BLE001  (a missing or hostile image is this record's problem)
            rep.broken["image unreadable"] += 1
            rep.problems.append(f"{rec.id}: image unreadable ({' '.join(str(exc).split())[:120]})")
            continue
        w, h = max(sizes, key=lambda s: s[0] * s[1])
        tokens = sum(image_tokens(family, hh, ww, max_pixels) for ww, hh in sizes)
        prompt = tokens + count(f"{question_text(rec.question, rec.choices)}\n{ROBUST_R1_INSTRUCTION}")
        completion = count(rec.response)
        rep.max_image_tokens = max(rep.max_image_tokens, tokens)
        rep.max_prompt, rep.max_completion = max(rep.max_prompt, prompt), max(rep.max_completion, completion)
        found: list[str] = []
        for name, text in _texts(rec).items():
            if "<image>" in text or "<video>" in text:
                found.append(f"an <image>/<video> literal in the {name} (trainers count it as an image slot)")
                rep.broken["image literal"] += 1
        if max_pixels and family not in ("qwen2-vl", "qwen2.5-vl") and h * w > max_pixels:
            found.append(f"{w}x{h} pixels exceed --max-pixels {max_pixels} (export with --max-pixels)")
            rep.broken["pixels"] += 1
        if max_prompt_length and prompt > max_prompt_length:
            found.append(
                f"prompt {prompt} tokens ({tokens} for the image) over --max-prompt-length {max_prompt_length}"
            )
            rep.broken["prompt length"] += 1
        if max_completion_length and completion > max_completion_length:
            found.append(f"chain {completion} tokens over --max-completion-length {max_completion_length}")
            rep.broken["completion length"] += 1
        rep.problems += [f"{rec.id}: {p}" for p in found]
    return rep


def summary(rep: CheckReport) -> dict[str, Any]:
    return {
        "family": rep.family,
        "records": rep.records,
        "broken": dict(rep.broken),
        "max_image_tokens": rep.max_image_tokens,
        "max_prompt_tokens": rep.max_prompt,
        "max_completion_tokens": rep.max_completion,
        "token_counts": "estimated (4 characters per token)" if rep.estimated else "tokenizer",
    }
