"""``robustgen corrupt-eval``: copies of an evaluation set degraded at several intensities.

As the Robust-R1 reference script does, each image keeps the same degrader choice at every level;
only the severity changes (and one seed gives the same layout at every severity, so levels are
monotone). A TSV is streamed row by row; every column but ``image`` is written back untouched.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustgen.degrade.apply import replay
from robustgen.degrade.recipes import Recipe, fixed_plan
from robustgen.errors import ImageError, RobustgenError, choice_error, first_line
from robustgen.images import decode, encode, pixel_sha256, read_image
from robustgen.pipelines.sources import IMAGE_REF_MAX, IMAGE_SUFFIXES, table_rows
from robustgen.schemas import DegradationPlan
from robustgen.schemas.paths import regular_file_under
from robustgen.schemas.sample import printable

DEFAULT_LEVELS = (0.23, 0.45, 0.9)

#: the released Robust-R1 evaluation generator's 16 degradation types (add_degradation/generate_degradation.py),
#: as robustgen's degraders; within each of the four stages its weights are equal and sum to the same total, so a
#: stage is drawn uniformly, then a type within it: exactly what a recipe with equal weights draws
ROBUST_R1_TYPES = {
    "acquisition": ("lens_blur", "lens_flare", "motion_blur", "dirty_lens", "saturation"),
    "transmission": ("compression", "block_change", "shifting", "scan_lines"),
    "environment": ("darkness", "atmospheric_turbulence", "noise", "color_diffusion"),
    "postprocessing": ("sharpness_change", "graffiti", "watermark_damage"),
}
PROTOCOLS = ("recipe", "robust-r1")


def protocol_recipe(protocol: str, recipe: Recipe | None) -> Recipe:
    """The recipe a protocol draws with: ``recipe`` (the given one, or the default), or ``robust-r1`` (one
    degradation per image from the paper's 16 types, its stage uniform, the same type at every level)."""
    if protocol not in PROTOCOLS:
        raise choice_error("--protocol", protocol, PROTOCOLS)
    if protocol == "recipe":
        return recipe or Recipe()
    if recipe is not None:
        raise RobustgenError("--protocol robust-r1 fixes the degraders; drop --recipe")
    return Recipe.load("robust-r1")  # the preset: its levels are corrupt-eval's own, its degraders the 16 types


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


Levels = list[tuple[np.ndarray, DegradationPlan]]
Planner = Callable[[np.ndarray, str], Levels]

MANIFEST_VERSION = 1
#: a manifest's entries by (row id, how many rows with that id came before, level name)
Expected = dict[tuple[str, int, int], dict]


class ManifestHeader(BaseModel):
    """The first line of a corrupt-eval manifest, checked before anything is written (a manifest is input)."""

    model_config = ConfigDict(extra="allow")

    robustgen_manifest: Literal[1]
    kind: Literal["tsv", "folder"]
    levels: list[Annotated[float, Field(gt=0, le=1)]] = Field(min_length=1)
    seed: int = Field(default=0, ge=0, strict=True)
    recipe: dict = Field(default_factory=dict)


def recipe_planner(recipe: Recipe, seed: int, levels: list[float]) -> Planner:
    """The default protocol: the recipe draws an image's degraders once, then each level applies them at that
    severity (one seed, one layout: levels are monotone)."""

    def plan(image: np.ndarray, row_id: str) -> Levels:
        names = [d.name for d in recipe.sample(seed=seed, sample_id=row_id).degradations]
        out = []
        for level in levels:
            p = fixed_plan([(n, level) for n in names], seed, row_id)
            out.append((replay(image, p.degradations), p))
        return out

    return plan


@dataclass
class CorruptReport:
    """What corrupt-eval wrote, how many rows it had to keep clean (undecodable, recorded in the sides), and on a
    rebuild the rows whose pixels differ from the manifest."""

    paths: list[Path]
    total: int = 0
    failed: int = 0
    mismatched: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)


class _Book:
    """Where each row's outcome goes besides the level files: the manifest being written (``--manifest-only``),
    and the manifest being checked against (``rebuild``)."""

    def __init__(self, names: list[int], manifest: Path | None, expect: Expected | None):
        self.names = names
        self.file = manifest.open("w", encoding="utf-8") if manifest else None
        self.expect = expect
        self.mismatched: list[str] = []
        self.reasons: dict[str, str] = {}  # why a row could not be rebuilt
        self.seen: dict[str, int] = {}  # rows met so far per id: a TSV may repeat an index

    def occurrence(self, row_id: str) -> int:
        """How many rows with this id came before the current one."""
        return self.seen.get(printable(row_id), 0)

    def unbuildable(self, row_id: str, reason: str) -> None:
        rid = printable(row_id)
        self.reasons.setdefault(rid, reason)
        if rid not in self.mismatched:
            self.mismatched.append(rid)

    def header(self, info: dict) -> None:
        if self.file:
            self.file.write(json.dumps({"robustgen_manifest": MANIFEST_VERSION, **info}, sort_keys=True) + "\n")

    def outcome(self, row_id: str, results: Levels | None, note: dict | None = None) -> None:
        """One row: its degraded levels (hashes recorded or checked), or a note (``image_of`` / ``error``)."""
        rid = printable(row_id)
        k = self.seen.get(rid, 0)
        self.seen[rid] = k + 1
        for i, name in enumerate(self.names):
            line: dict = {"id": rid, "level": name}
            if results is not None:
                degraded, plan = results[i]
                line["degradations"] = [d.model_dump(mode="json") for d in plan.degradations]
                line["sha256"] = pixel_sha256(degraded)
            else:
                line.update(note or {})
            if self.file:  # key order kept: a rebuild writes the records exactly as corrupt-eval did
                self.file.write(json.dumps(line) + "\n")
            if self.expect is not None:
                want = self.expect.get((rid, k, name))
                if want is None or want.get("sha256") != line.get("sha256") or ("error" in want) != ("error" in line):
                    if rid not in self.mismatched:
                        self.mismatched.append(rid)

    def close(self) -> None:
        if self.file:
            self.file.close()


def corrupt_tsv(
    src: Path,
    out: Path,
    levels: list[float],
    planner: Planner,
    on_row: Callable[[], None] | None = None,
    book: _Book | None = None,
    write: bool = True,
) -> CorruptReport:
    """Every row is written at every level, so row counts match the original. A row whose image cannot be
    decoded stays clean and its side line says why; a row whose image cell names another row (VLMEvalKit's way
    of storing a repeated image) keeps that reference, so it shares that row's degraded image. ``write`` False:
    nothing but the manifest (``book``) is written."""
    names = level_names(levels)
    book = book or _Book(names, None, None)
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
    report = CorruptReport(paths if write else [])
    # bytes that are not UTF-8 were read as surrogate escapes and are written back unchanged
    files = [p.open("w", encoding="utf-8", errors="surrogateescape", newline="") for p in paths] if write else []
    sides = [p.with_suffix(".degradations.jsonl").open("w", encoding="utf-8") for p in paths] if write else []
    try:
        writers = [csv.writer(f, delimiter="\t", lineterminator="\n") for f in files]
        for w in writers:
            w.writerow(header)

        def passthrough(row: list[str] | None, side_id: str, note: dict) -> None:
            for w, side in zip(writers, sides, strict=True):
                if row is not None:
                    w.writerow(row)
                side.write(json.dumps({"index": side_id, **note}) + "\n")

        for lineno, row, err in rows:
            if row == []:
                continue
            report.total += 1
            row_id = row[idx_col] if row and idx_col is not None and idx_col < len(row) else str(lineno)
            side_id = printable(row_id)
            cell = row[col].strip() if row and col < len(row) else ""
            if row is not None and 0 < len(cell) <= IMAGE_REF_MAX and cell in indices:
                passthrough(row, side_id, {"image_of": cell})
                book.outcome(row_id, None, {"image_of": cell})
                continue
            try:
                if row is None:
                    raise ValueError(err)
                image = decode(base64.b64decode(cell), f"{src.name}:{lineno}")
            except (ImageError, ValueError, IndexError) as exc:
                report.failed += 1
                print(f"kept clean: {src.name}:{lineno}: image column unreadable: {exc}", file=sys.stderr)
                passthrough(row, side_id, {"error": f"image unreadable: {exc}"})
                book.outcome(row_id, None, {"error": f"image unreadable: {exc}"})
                continue
            results = planner(image, row_id)
            book.outcome(row_id, results)
            for w, side, (degraded, plan) in zip(writers, sides, results, strict=False):
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
    report.mismatched = book.mismatched
    return report


def _indices(src: Path, idx_col: int | None) -> set[str]:
    """Every value of the TSV's index column (what a shared-image reference may name)."""
    if idx_col is None:
        return set()
    rows = table_rows(src, "\t")
    next(rows, None)
    return {cells[idx_col] for _, cells, _ in rows if cells and idx_col < len(cells)}


def corrupt_folder(
    src: Path,
    out: Path,
    levels: list[float],
    planner: Planner,
    on_row: Callable[[], None] | None = None,
    book: _Book | None = None,
    write: bool = True,
) -> CorruptReport:
    names = level_names(levels)
    book = book or _Book(names, None, None)
    dirs = [out / f"{src.name}_Robust_{n}" for n in names]
    report = CorruptReport(dirs if write else [])
    sides = []
    if write:
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
                print(f"not degraded: {exc}", file=sys.stderr)
                for side in sides:
                    side.write(json.dumps({"image": printable(str(rel)), "error": str(exc)}) + "\n")
                book.outcome(str(rel), None, {"error": str(exc)})
                continue
            results = planner(image, str(rel))
            book.outcome(str(rel), results)
            for d, side, (degraded, plan) in zip(dirs, sides, results, strict=False):
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
    report.mismatched = book.mismatched
    return report


def _kind(src: Path) -> str:
    if src.is_dir():
        return "folder"
    if src.is_file() and src.suffix.lower() == ".tsv":
        return "tsv"
    raise RobustgenError(f"{src}: expected a VLMEvalKit .tsv file or an image folder")


def _run(src: Path, out: Path, levels: list[float], planner: Planner, on_row, book: _Book, write: bool):
    kind = _kind(src)
    run = corrupt_folder if kind == "folder" else corrupt_tsv
    try:
        return run(src, out, levels, planner, on_row, book, write)
    finally:
        book.close()


def manifest_path(out: Path, src: Path) -> Path:
    return out / f"{src.stem if src.is_file() else src.name}.manifest.jsonl"


def corrupt_eval(
    src: str | Path,
    out: str | Path,
    levels: list[float],
    recipe: Recipe | None = None,
    seed: int = 0,
    on_row: Callable[[], None] | None = None,
    manifest_only: bool = False,
) -> CorruptReport:
    """Degraded copies of ``src`` at each level; ``manifest_only``: instead of them, one small manifest (per row
    and level the id, the exact degradation records and the sha256 of the degraded pixels) that ``rebuild``
    turns back into the same files."""
    src, out = Path(src), Path(out)
    recipe = recipe or Recipe()
    if out.resolve().is_relative_to(src.resolve()) and src.is_dir():
        raise RobustgenError(f"--out {out} lies inside the source folder {src}; choose a folder outside it")
    kind = _kind(src)
    names = level_names(levels)
    book = _Book(names, None, None)
    if manifest_only:
        out.mkdir(parents=True, exist_ok=True)
        book = _Book(names, manifest_path(out, src), None)
        book.header(
            {
                "kind": kind,
                "name": src.name,
                "levels": levels,
                "level_names": names,
                "seed": seed,
                "recipe": recipe.to_dict(),
                "source_sha256": _file_sha256(src) if kind == "tsv" else None,
            }
        )
    report = _run(src, out, levels, recipe_planner(recipe, seed, levels), on_row, book, write=not manifest_only)
    if manifest_only:
        report.paths = [manifest_path(out, src)]
    return report


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_manifest(path: Path) -> tuple[ManifestHeader, Expected]:
    """(header, entries) of a corrupt-eval manifest; ``RobustgenError`` (one line) when it is not one or its header
    is not valid. Entries are kept as they are: a row whose entry is damaged fails alone, when it is rebuilt."""
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
        raw = json.loads(lines[0]) if lines else None
        if not isinstance(raw, dict) or "robustgen_manifest" not in raw:
            raise ValueError("no manifest header")
        header = ManifestHeader.model_validate(raw)
        level_names(header.levels)
    except (OSError, UnicodeDecodeError) as exc:
        raise RobustgenError(f"{path}: cannot read the manifest ({exc})") from None
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "header"
        raise RobustgenError(f"{path}: the manifest header's {where}: {e['msg']}") from None
    except (ValueError, RecursionError) as exc:
        raise RobustgenError(f"{path}: not a robustgen corrupt-eval manifest ({first_line(exc)})") from None
    entries: Expected = {}
    count: dict[tuple[str, int], int] = {}
    for line in lines[1:]:
        try:
            obj = json.loads(line) if line.strip() else None
        except (ValueError, RecursionError):
            continue  # a damaged line: its row finds no entry and fails by name
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or type(obj.get("level")) is not int:
            continue
        key = (obj["id"], obj["level"])
        k = count.get(key, 0)
        count[key] = k + 1
        entries[(obj["id"], k, obj["level"])] = obj
    return header, entries


def rebuild(manifest: str | Path, src: str | Path, out: str | Path) -> CorruptReport:
    """The files ``corrupt-eval`` would write, rebuilt from a manifest and the clean source: each row's recorded
    degradations are replayed and every degraded image's pixels are checked against the manifest's hash.
    ``report.mismatched`` names the rows that differ, are missing from either side, or cannot be rebuilt
    (``report.reasons`` says why); such a row is written clean. A header that is not valid is refused before
    anything is written."""
    manifest, src, out = Path(manifest), Path(src), Path(out)
    header, entries = read_manifest(manifest)
    kind = _kind(src)
    if kind != header.kind:
        raise RobustgenError(f"{src}: the manifest describes a {header.kind} source, this is a {kind}")
    names = level_names(header.levels)
    book = _Book(names, None, entries)

    def planner(image: np.ndarray, row_id: str) -> Levels:
        k = book.occurrence(row_id)
        results = []
        for name in names:
            entry = entries.get((printable(row_id), k, name))
            records = entry.get("degradations") if entry else None
            if entry is None or records is None:
                raise _Unbuildable("not in the manifest")
            try:
                plan = DegradationPlan(sample_id=row_id, seed=header.seed, degradations=records)
                results.append((replay(image, plan.degradations), plan))
            except ValidationError as exc:
                e = exc.errors()[0]
                where = ".".join(str(x) for x in e["loc"])
                raise _Unbuildable(f"level {name}: {where}: {e['msg']}") from None
            except Exception as exc:  # noqa: BLE001  (an unknown degrader, parameters no degrader accepts: this row)
                raise _Unbuildable(f"level {name}: {first_line(exc)}") from None
        return results

    report = _run(src, out, header.levels, _tolerant(planner, book), None, book, write=True)
    missing = sorted({rid for rid, _, _ in entries} - _ids_of(src, kind))
    for m in missing:
        book.reasons.setdefault(m, "in the manifest, not in the source")
    report.mismatched += [m for m in missing if m not in report.mismatched]
    report.reasons = book.reasons
    return report


class _Unbuildable(Exception):
    pass


def _tolerant(planner: Planner, book: _Book) -> Planner:
    """A rebuild planner under which a row that cannot be rebuilt (not in the manifest, a damaged entry) is a named
    mismatch, written clean, and the rest go on."""

    def plan(image: np.ndarray, row_id: str) -> Levels:
        try:
            return planner(image, row_id)
        except _Unbuildable as exc:
            book.unbuildable(row_id, str(exc))
            plan = DegradationPlan(sample_id=row_id)
            return [(image, plan) for _ in book.names]

    return plan


def _ids_of(src: Path, kind: str) -> set[str]:
    if kind == "folder":
        return {printable(str(p.relative_to(src))) for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    rows = table_rows(src, "\t")
    first = next(rows, None)
    header = first[1] if first else []
    idx = header.index("index") if "index" in header else None
    return {printable(c[idx] if idx is not None and idx < len(c) else str(n)) for n, c, _ in rows if c}
