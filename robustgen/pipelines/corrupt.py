"""``robustgen corrupt-eval``: copies of an evaluation set degraded at several intensities.

As the Robust-R1 reference script does, each image keeps the same degrader choice at every level;
only the severity changes (and one seed gives the same layout at every severity, so levels are
monotone). A TSV is streamed row by row; every column but ``image`` is written back untouched.
"""

from __future__ import annotations

import base64
import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustgen.degrade.apply import replay
from robustgen.degrade.recipes import Recipe, fixed_plan
from robustgen.errors import ImageError, RobustgenError
from robustgen.images import decode, encode, read_image
from robustgen.pipelines.sources import IMAGE_REF_MAX, IMAGE_SUFFIXES, table_rows
from robustgen.schemas.paths import regular_file_under
from robustgen.schemas.sample import printable

DEFAULT_LEVELS = (0.23, 0.45, 0.9)


def parse_levels(text: str) -> list[float]:
    try:
        levels = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise RobustgenError(f"--levels {text!r}: expected numbers like 0.23,0.45,0.9") from None
    if not levels or any(not 0 < v <= 1 for v in levels):
        raise RobustgenError(f"--levels {text!r}: every level must lie in (0, 1]")
    return levels


def level_names(levels: list[float]) -> list[int]:
    """Each level as a percentage of the strongest one: 0.23, 0.45, 0.9 -> 25, 50, 100 (the paper's tables)."""
    top = max(levels)
    names = [int(100 * v / top + 1e-6) for v in levels]
    if len(set(names)) != len(names):
        raise RobustgenError(f"--levels {levels}: two levels would share the name {names}")
    return names


def _degrade_levels(image: np.ndarray, recipe: Recipe, seed: int, row_id: str, levels: list[float]):
    names = [d.name for d in recipe.sample(seed=seed, sample_id=row_id).degradations]
    for level in levels:
        plan = fixed_plan([(n, level) for n in names], seed, row_id)
        yield replay(image, plan.degradations), plan


@dataclass
class CorruptReport:
    """What corrupt-eval wrote, and how many rows it had to keep clean (undecodable, recorded in the sides)."""

    paths: list[Path]
    total: int = 0
    failed: int = 0


def corrupt_tsv(
    src: Path, out: Path, levels: list[float], recipe: Recipe, seed: int, on_row: Callable[[], None] | None = None
) -> CorruptReport:
    """Every row is written at every level, so row counts match the original. A row whose image cannot be
    decoded stays clean and its side line says why; a row whose image cell names another row (VLMEvalKit's way
    of storing a repeated image) keeps that reference, so it shares that row's degraded image."""
    names = level_names(levels)
    paths = [out / f"{src.stem}_Robust_{n}.tsv" for n in names]
    rows = table_rows(src, "\t")
    first = next(rows, None)
    header = first[1] if first else None
    if not header or "image" not in header:
        raise RobustgenError(f"{src}: a VLMEvalKit TSV needs a header with an 'image' column")
    col = header.index("image")
    idx_col = header.index("index") if "index" in header else None
    indices = _indices(src, idx_col)
    out.mkdir(parents=True, exist_ok=True)
    report = CorruptReport(paths)
    # bytes that are not UTF-8 were read as surrogate escapes and are written back unchanged
    files = [p.open("w", encoding="utf-8", errors="surrogateescape", newline="") for p in paths]
    sides = [p.with_suffix(".degradations.jsonl").open("w", encoding="utf-8") for p in paths]
    try:
        writers = [csv.writer(f, delimiter="\t", lineterminator="\n") for f in files]
        for w in writers:
            w.writerow(header)
        for lineno, row, err in rows:
            if row == []:
                continue
            report.total += 1
            row_id = row[idx_col] if row and idx_col is not None and idx_col < len(row) else str(lineno)
            side_id = row_id.encode("utf-8", "backslashreplace").decode("utf-8")
            cell = row[col].strip() if row and col < len(row) else ""
            if row is not None and 0 < len(cell) <= IMAGE_REF_MAX and cell in indices:
                for w, side in zip(writers, sides, strict=True):
                    w.writerow(row)
                    side.write(json.dumps({"index": side_id, "image_of": cell}) + "\n")
                continue
            try:
                if row is None:
                    raise ValueError(err)
                image = decode(base64.b64decode(cell), f"{src.name}:{lineno}")
            except (ImageError, ValueError, IndexError) as exc:
                report.failed += 1
                print(f"skipped: {src.name}:{lineno}: image column unreadable: {exc}", file=sys.stderr)
                for w, side in zip(writers, sides, strict=True):
                    if row is not None:
                        w.writerow(row)
                    side.write(json.dumps({"index": side_id, "error": f"image unreadable: {exc}"}) + "\n")
                continue
            for w, side, (degraded, plan) in zip(
                writers, sides, _degrade_levels(image, recipe, seed, row_id, levels), strict=True
            ):
                new = list(row)
                new[col] = base64.b64encode(encode(degraded, "jpg")).decode("ascii")
                w.writerow(new)
                side.write(
                    json.dumps(
                        {"index": side_id, "degradations": [d.model_dump(mode="json") for d in plan.degradations]}
                    )
                    + "\n"
                )
            if on_row:
                on_row()
    finally:
        for f in files + sides:
            f.close()
    return report


def _indices(src: Path, idx_col: int | None) -> set[str]:
    """Every value of the TSV's index column (what a shared-image reference may name)."""
    if idx_col is None:
        return set()
    rows = table_rows(src, "\t")
    next(rows, None)
    return {cells[idx_col] for _, cells, _ in rows if cells and idx_col < len(cells)}


def corrupt_folder(
    src: Path, out: Path, levels: list[float], recipe: Recipe, seed: int, on_row: Callable[[], None] | None = None
) -> CorruptReport:
    names = level_names(levels)
    dirs = [out / f"{src.name}_Robust_{n}" for n in names]
    report = CorruptReport(dirs)
    sides = []
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        sides.append((d / "degradations.jsonl").open("w", encoding="utf-8"))
    try:
        for f in sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()):
            rel = f.relative_to(src)
            report.total += 1
            try:
                image = read_image(regular_file_under(src, str(rel)))  # regular files inside the folder only
            except (ImageError, ValueError) as exc:
                report.failed += 1
                print(f"skipped: {exc}", file=sys.stderr)
                for side in sides:
                    side.write(json.dumps({"image": printable(str(rel)), "error": str(exc)}) + "\n")
                continue
            for d, side, (degraded, plan) in zip(
                dirs, sides, _degrade_levels(image, recipe, seed, str(rel), levels), strict=True
            ):
                target = d / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                fmt = "png" if rel.suffix.lower() == ".png" else "jpg"
                target.with_suffix(f".{fmt}").write_bytes(encode(degraded, fmt))
                side.write(
                    json.dumps(
                        {
                            "image": printable(str(rel.with_suffix(f".{fmt}"))),
                            "degradations": [x.model_dump(mode="json") for x in plan.degradations],
                        }
                    )
                    + "\n"
                )
            if on_row:
                on_row()
    finally:
        for s in sides:
            s.close()
    return report


def corrupt_eval(
    src: str | Path,
    out: str | Path,
    levels: list[float],
    recipe: Recipe | None = None,
    seed: int = 0,
    on_row: Callable[[], None] | None = None,
) -> CorruptReport:
    src, out = Path(src), Path(out)
    recipe = recipe or Recipe()
    if out.resolve().is_relative_to(src.resolve()) and src.is_dir():
        raise RobustgenError(f"--out {out} lies inside the source folder {src}; choose a folder outside it")
    if src.is_dir():
        return corrupt_folder(src, out, levels, recipe, seed, on_row)
    if src.is_file() and src.suffix.lower() == ".tsv":
        return corrupt_tsv(src, out, levels, recipe, seed, on_row)
    raise RobustgenError(f"{src}: expected a VLMEvalKit .tsv file or an image folder")
