"""Reading a written dataset back, and checking it end to end (``robustgen validate``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, ValidationError

from robustgen.annotate.contract import check_record
from robustgen.errors import RobustgenError, first_line
from robustgen.schemas import DatasetRecord, LengthBand
from robustgen.schemas.paths import lexically_under, plain_file_under, regular_file_under
from robustgen.schemas.recipe import ChainGate

M = TypeVar("M", bound=BaseModel)


@dataclass
class Dataset:
    """A synth output folder on the local disk."""

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    _trusted: list[Path] | None = field(default=None, repr=False)  # source_roots(), resolved once

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

    def shards(self) -> list[str]:
        """The names of the data shards (``data/*.jsonl``, not hidden temporaries), in order."""
        return sorted(
            p.name
            for p in (self.root / "data").glob("*.jsonl")
            if not p.name.startswith(".") and p.is_file() and not p.is_symlink()
        )

    def odd_shards(self) -> list[str]:
        """``data/*.jsonl`` entries that are no shard (a link, a folder, a FIFO): ``validate`` names each."""
        return sorted(
            p.name
            for p in (self.root / "data").glob("*.jsonl")
            if not p.name.startswith(".") and (p.is_symlink() or not p.is_file())
        )

    def files(self) -> list[str]:
        """Every file the dataset is made of, relative to its folder: the manifest, the card and its metadata,
        failures, the shards, and every image a record names (kept clean ones included). What ``push`` uploads:
        never the work folder, exports, hidden files or anything else lying in the folder. ``ValueError`` when one
        of them is a symbolic link or not a regular file (``validate`` names each)."""
        names = [n for n in ("manifest.json", "README.md", "metadata.jsonl", "failures.jsonl") if self._has(n)]
        names += [f"data/{n}" for n in self.shards()]
        for _, obj, _ in self.raw_records():
            if obj is None:
                continue
            rec = DatasetRecord.model_validate(obj)
            names += [*rec.images, *([rec.clean_image] if rec.clean_image else [])]
        names = list(dict.fromkeys(names))
        for rel in names:
            plain_file_under(self.root, rel)
        return names

    def _has(self, rel: str) -> bool:
        return (self.root / rel).is_symlink() or (self.root / rel).exists()

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
        """(where, parsed line or None, error) for every line of every data shard."""
        for name in self.shards():
            yield from self._lines(f"data/{name}")

    def iter_records(self) -> Iterator[DatasetRecord]:
        """Every record, validated, in id order, one at a time: only (id, shard, offset) of each line is held, so
        memory stays flat however large the dataset (exports and checks stream through this)."""
        for name, line in self.lines_by_id():
            try:
                yield DatasetRecord.model_validate_json(line)
            except ValidationError as exc:
                raise RobustgenError(f"{self.root}/data/{name}: {first_error(exc)}") from None

    def lines_by_id(self, strict: bool = True) -> Iterator[tuple[str, bytes]]:
        """(shard name, raw line) of every record in id order, holding only each line's (id, shard, offset). A
        line without an id is an error, or skipped when not ``strict`` (``validate`` reports it)."""
        index: list[tuple[str, str, int]] = []
        for name in self.shards():  # one string per shard, shared by its lines' index entries
            shard = self.root / "data" / name
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

    def recorded_roots(self) -> list[Path] | None:
        """The folders the dataset's source images came from, as its manifest records them (``source.roots``), or
        None when it records none (a dataset from before they were recorded: then the folder of an absolute
        ``source.path``, if any, stands in)."""
        src = self.manifest.get("source")
        src = src if isinstance(src, dict) else {}
        roots = src.get("roots")
        if not isinstance(roots, list):
            return None
        return [Path(os.path.normpath(r)) for r in roots if isinstance(r, str) and "\x00" not in r and r]

    def source_roots(self) -> list[Path]:
        """The recorded source folders a command may read a record's ``source_image`` from. The manifest is the
        dataset's own word, so a root is left out unless it is a real folder as written (no symbolic link on its
        way) and narrow enough to trust: not ``/``, a system folder, the home folder or one above it, nor hidden.
        Resolved once per dataset (every record of an eval asks)."""
        if self._trusted is None:
            self._trusted = self._source_roots()
        return self._trusted

    def _source_roots(self) -> list[Path]:
        roots = self.recorded_roots()
        if roots is None:
            src = self.manifest.get("source")
            path = src.get("path") if isinstance(src, dict) else None
            if not (isinstance(path, str) and path != "samples" and Path(path).is_absolute()):
                return []
            roots = [Path(os.path.normpath(path if Path(path).is_dir() else str(Path(path).parent)))]
        return [r for r in roots if r.is_absolute() and Path(os.path.realpath(r)) == r and _narrow(r)]

    def clean_source(self, rec: DatasetRecord, extra_roots: list[Path] = ()) -> str:
        """Where the clean image of ``rec`` is read from: its kept copy (``clean/``), a ``skimage:`` sample, or its
        ``source_image`` when that lies inside a source root (the manifest's, or one the user names). A record
        naming anything else is not trusted: ``ValueError`` whose reason says nothing about files outside (nor,
        for a manifest's root, inside: only a root the user names gets the detailed reason)."""
        if rec.clean_image is not None:
            return str(rec.clean_image_in(self.root))
        ref = rec.source_image
        if ref.startswith("skimage:"):
            return ref
        for root in map(Path, extra_roots):
            if lexically_under(ref, root):
                return str(regular_file_under(root, ref))  # the user's own folder: missing or linked out is said
        for root in self.source_roots():
            if lexically_under(ref, root):
                try:
                    return str(regular_file_under(root, ref))
                except ValueError:
                    break
        hint = "" if self.recorded_roots() is not None else " (this dataset's manifest records none)"
        raise ValueError(
            f"the record's source_image cannot be read from the dataset's source folders{hint} or a --source-root; "
            "it is not read"
        )


#: folders no dataset's manifest may name as the root of its source images
_SYSTEM = tuple(
    Path(p)
    for p in (
        "/etc", "/proc", "/sys", "/dev", "/boot", "/run", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
        "/var", "/private", "/snap", "/root",
    )
)  # fmt: skip


def _narrow(root: Path) -> bool:
    """A source root narrow enough to read what a record names below it: a visible folder below the home folder,
    or elsewhere one that is not ``/``, above the home folder, or a system folder."""
    home = Path.home()
    if not _visible(root):
        return False
    if root.is_relative_to(home) and root != home:
        return True
    if len(root.parts) < 3 or home.is_relative_to(root):  # '/', '/tmp', '/data': a whole top-level tree
        return False
    return not any(root.is_relative_to(s) for s in _SYSTEM)


def _absurd(root: Path) -> bool:
    """A recorded source folder no dataset can honestly name: '/', a system folder, the home folder or one above."""
    home = Path.home()
    return root == Path("/") or home.is_relative_to(root) or any(root.is_relative_to(s) for s in _SYSTEM)


def _visible(root: Path) -> bool:
    return not any(part.startswith(".") for part in root.parts[1:])


def _line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return first_line(exc, 200)


def first_error(exc: ValidationError) -> str:
    """The first problem of a record that does not validate: 'field.path: why'."""
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"


def _image_problems(ds: Dataset, rel: str, rec: DatasetRecord, name: str) -> list[str]:
    """What is wrong with the image file ``rel`` of ``rec`` (called ``name`` in the problem): missing, outside the
    folder, not a regular file, unreadable, or not the record's size."""
    try:
        img = plain_file_under(ds.root, rel)
    except ValueError as exc:
        return [f"{name} {exc}"]
    try:
        with Image.open(img) as im:
            if im.size != (rec.width, rec.height):
                return [f"{name} is {im.size[0]}x{im.size[1]}, record says {rec.width}x{rec.height}"]
    except Exception as exc:  # noqa: BLE001  (a hostile file: OSError, bomb, SyntaxError, ...)
        return [f"{name} {rel} is unreadable ({_line(exc)})"]
    return []


def _provenance_ok(ref: str, roots: list[Path]) -> bool:
    """A record's ``source_image`` is a sample name, an embedded image, or a path below one of the source roots."""
    if ref.startswith("skimage:") or ref.endswith(" (embedded)"):
        return True
    return any(lexically_under(ref, root) for root in roots)


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
    roots = ds.recorded_roots()  # provenance as recorded; whether eval may read there is eval's question
    problems: list[str] = [
        f"manifest.json: source.roots names {r}, too broad for a source folder" for r in roots or [] if _absurd(r)
    ]
    roots = [r for r in roots if not _absurd(r)] if roots is not None else None
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
            problems.append(f"{where}: {first_error(exc)}")
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
        if roots is not None and not _provenance_ok(rec.source_image, roots):
            problems.append(
                f"{where} ({rec.id}): source_image is outside the dataset's source folders (manifest source.roots)"
            )
    for rel in ["manifest.json", "README.md", "metadata.jsonl", "failures.jsonl", "data"]:
        if (ds.root / rel).is_symlink():
            problems.append(f"{rel}: a symbolic link; a dataset holds its own files")
    problems += [
        f"data/{n}: not a regular file (a link, a folder or a FIFO); a shard is a file" for n in ds.odd_shards()
    ]
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
