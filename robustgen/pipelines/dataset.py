"""Reading a written dataset back, and checking it end to end (``robustgen validate``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, ValidationError

from robustgen.annotate.contract import check_record
from robustgen.errors import RobustgenError, first_line
from robustgen.schemas import DatasetRecord, LengthBand
from robustgen.schemas.paths import regular_file_under
from robustgen.schemas.recipe import ChainGate

M = TypeVar("M", bound=BaseModel)


@dataclass
class Dataset:
    """A synth output folder on the local disk."""

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        root = Path(root)
        if not (root / "manifest.json").is_file():
            raise RobustgenError(f"{root}: not a robustgen dataset (no manifest.json); run `robustgen synth` first")
        try:
            manifest = json.loads((root / "manifest.json").read_bytes().decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise RobustgenError(f"{root}/manifest.json: not valid JSON ({_line(exc)})") from None
        if not isinstance(manifest, dict):
            raise RobustgenError(f"{root}/manifest.json: expected a JSON object, got {type(manifest).__name__}")
        return cls(root, manifest)

    def _lines(self, rel: str) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
        """(where, parsed object or None, error) for each non-blank line of the file ``rel``."""
        path = self.root / rel
        if not path.is_file():
            return
        for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            where = f"{rel}:{lineno}"
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield where, None, "not valid UTF-8"
                continue
            except (ValueError, RecursionError) as exc:
                yield where, None, f"not valid JSON ({_line(exc)})"
                continue
            if not isinstance(obj, dict):
                yield where, None, "not a JSON object"
                continue
            yield where, obj, ""

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
        """(where, parsed line or None, error) for every line of every data shard."""
        for shard in sorted((self.root / "data").glob("*.jsonl")):
            yield from self._lines(f"data/{shard.name}")

    def iter_records(self) -> Iterator[DatasetRecord]:
        """Every record, validated, in id order, one at a time: only (id, shard, offset) of each line is held, so
        memory stays flat however large the dataset (exports and checks stream through this)."""
        for name, line in self.lines_by_id():
            try:
                yield DatasetRecord.model_validate_json(line)
            except ValidationError as exc:
                raise RobustgenError(f"{self.root}/data/{name}: {_first(exc)}") from None

    def lines_by_id(self, strict: bool = True) -> Iterator[tuple[str, bytes]]:
        """(shard name, raw line) of every record in id order, holding only each line's (id, shard, offset). A
        line without an id is an error, or skipped when not ``strict`` (``validate`` reports it)."""
        index: list[tuple[str, str, int]] = []
        for shard in sorted((self.root / "data").glob("*.jsonl")):
            name = shard.name  # one string per shard, shared by its lines' index entries
            with shard.open("rb") as f:
                offset = 0
                for line in f:
                    if line.strip():
                        try:
                            index.append((str(json.loads(line)["id"]), name, offset))
                        except (ValueError, KeyError, TypeError, RecursionError):
                            if strict:
                                raise RobustgenError(
                                    f"{shard}: a line is not a record; run `robustgen validate`"
                                ) from None
                    offset += len(line)
        index.sort()
        handles: dict[str, Any] = {}
        try:
            for _, name, offset in index:
                f = handles.get(name) or handles.setdefault(name, (self.root / "data" / name).open("rb"))
                f.seek(offset)
                yield name, f.readline()
        finally:
            for f in handles.values():
                f.close()

    def failure_lines(self) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
        """(where, failure or None, error) for every line of failures.jsonl."""
        yield from self._lines("failures.jsonl")

    def failures(self) -> list[dict[str, Any]]:
        """The readable lines of failures.jsonl (``validate`` reports the others)."""
        return [obj for _, obj, _ in self.failure_lines() if obj is not None]

    def counts(self) -> dict[str, Any]:
        counts = self.manifest.get("counts")
        return counts if isinstance(counts, dict) else {}


def _line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return first_line(exc, 200)


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"


def _image_problems(ds: Dataset, rel: str, rec: DatasetRecord, name: str) -> list[str]:
    """What is wrong with the image file ``rel`` of ``rec`` (called ``name`` in the problem): missing, outside the
    folder, not a regular file, unreadable, or not the record's size."""
    try:
        img = regular_file_under(ds.root, rel)
    except ValueError as exc:
        return [f"{name} {exc}"]
    try:
        with Image.open(img) as im:
            if im.size != (rec.width, rec.height):
                return [f"{name} is {im.size[0]}x{im.size[1]}, record says {rec.width}x{rec.height}"]
    except Exception as exc:  # noqa: BLE001  (a hostile file: OSError, bomb, SyntaxError, ...)
        return [f"{name} {rel} is unreadable ({_line(exc)})"]
    return []


def _recipe_part(ds: Dataset, key: str, model: type[M]) -> M:
    """A part of the recipe the dataset was built with (its manifest's), the defaults when absent or unreadable."""
    recipe = ds.manifest.get("recipe")
    raw = recipe.get(key) if isinstance(recipe, dict) else None
    try:
        return model.model_validate(raw) if isinstance(raw, dict) else model()
    except ValidationError:
        return model()


def gate_of(ds: Dataset) -> ChainGate:
    """The quality gate the dataset was built with."""
    return _recipe_part(ds, "chain_gate", ChainGate)


def band_of(ds: Dataset) -> LengthBand:
    """The reasoning-length band the dataset was built with."""
    return _recipe_part(ds, "reasoning_length", LengthBand)


def validate_dataset(root: str | Path) -> list[str]:
    """Every problem in a dataset, one line each; empty when it is sound. Chains are re-checked by the quality
    gate (stored verdicts are not trusted)."""
    ds = Dataset.open(root)
    gate, band = gate_of(ds), band_of(ds)
    problems: list[str] = []
    seen: dict[str, str] = {}
    n = 0
    for where, obj, err in ds.raw_records():
        n += 1
        if obj is None:
            problems.append(f"{where}: {err}")
            continue
        try:
            rec = DatasetRecord.model_validate(obj)
        except ValidationError as exc:
            problems.append(f"{where}: {_first(exc)}")
            continue
        if rec.id in seen:
            problems.append(f"{where}: duplicate id {rec.id!r} (also at {seen[rec.id]})")
        seen[rec.id] = where
        problems += [f"{where} ({rec.id}): {p}" for p in check_record(rec, band, gate)]
        named = [("image" if k == 1 else f"image {k}", rel) for k, rel in enumerate(rec.images, start=1)]
        if rec.clean_image is not None:
            named.append(("clean image", rec.clean_image))
        for name, rel in named:
            problems += [f"{where} ({rec.id}): {p}" for p in _image_problems(ds, rel, rec, name)]
    counts = ds.counts()
    fails = 0
    for where, obj, err in ds.failure_lines():
        fails += 1
        if obj is None:
            problems.append(f"{where}: {err}")
    if counts.get("written") != n:
        problems.append(f"manifest.json: counts.written is {counts.get('written')}, data holds {n} records")
    if counts.get("failed") != fails:
        problems.append(f"manifest.json: counts.failed is {counts.get('failed')}, failures.jsonl has {fails} lines")
    written, failed = counts.get("written"), counts.get("failed")
    if not (isinstance(written, int) and isinstance(failed, int) and counts.get("total") == written + failed):
        problems.append("manifest.json: counts.total is not written + failed")
    return problems
