"""Formats that plug in like degraders and teachers: source readers (``robustgen.sources`` entry points) and
exporters (``robustgen.exporters``), each a small public description with one function. The built-in formats are
registered the same way, so ``--format`` and ``--to`` list a plugin beside them.

A source reader turns a file or folder into rows::

    SourceFormat(name="captions", read=read_captions, suffixes=(".captions",), help="...")
    def read_captions(path: Path, options: SourceOptions) -> Iterator[SourceRow | Failure]: ...

An exporter writes a checked dataset for a trainer::

    ExportFormat(name="csv-pairs", export=export_pairs, help="...")
    def export_pairs(dataset: Dataset, out: Path, max_pixels: int | None) -> Path: ...

``jsonl_sink`` (rows streamed to a temporary file renamed into place when complete) and ``place_images`` (a
record's images copied or linked under the export folder) are what a streaming, atomic exporter needs."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustgen.errors import choice_error
from robustgen.plugins import load_entry_points

if TYPE_CHECKING:
    from robustgen.pipelines.dataset import Dataset
    from robustgen.schemas import DatasetRecord, Failure, SourceRow


@dataclass(frozen=True)
class SourceOptions:
    """What `synth` passes every reader besides the path (each reader uses what applies to it)."""

    question: str | None = None
    coco_root: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class SourceFormat:
    """A source format: ``read(path, options)`` yields one ``SourceRow`` or ``Failure`` per input row (a row that
    cannot be read is a ``Failure`` with its reason, never an exception). ``suffixes`` let ``--format auto`` pick
    it; ``folder`` marks a reader of folders."""

    name: str
    read: Callable[[Path, SourceOptions], Iterator[SourceRow | Failure]]
    suffixes: tuple[str, ...] = ()
    help: str = ""
    folder: bool = False


@dataclass(frozen=True)
class ExportFormat:
    """An export format: ``export(dataset, out, max_pixels)`` writes a dataset that passed ``validate`` into the
    folder ``out`` and returns the main file it wrote. ``needs_clean``: it pairs degraded and clean images, so the
    dataset must be built with ``--keep-clean`` (refused before ``synth`` runs otherwise)."""

    name: str
    export: Callable[[Dataset, Path, int | None], Path]
    help: str = ""
    needs_clean: bool = False


_sources: dict[str, SourceFormat] = {}
_exporters: dict[str, ExportFormat] = {}
_loaded = {"sources": False, "exporters": False}
_lock = threading.Lock()


def register_source(fmt: SourceFormat) -> SourceFormat:
    _check(fmt, SourceFormat, _sources)
    _sources[fmt.name] = fmt
    return fmt


def register_exporter(fmt: ExportFormat) -> ExportFormat:
    _check(fmt, ExportFormat, _exporters)
    _exporters[fmt.name] = fmt
    return fmt


def _check(fmt: Any, kind: type, table: dict[str, Any]) -> None:
    if not isinstance(fmt, kind):
        raise TypeError(f"a {kind.__name__} is expected, got {type(fmt).__name__}")
    if not isinstance(fmt.name, str) or not fmt.name.replace("-", "").replace("_", "").isalnum():
        raise TypeError(f"format name {fmt.name!r}: letters, digits, '-' and '_' only")
    if fmt.name in ("auto", "samples"):
        raise TypeError(f"format name {fmt.name!r} is reserved")
    if fmt.name in table and table[fmt.name] is not fmt:
        raise TypeError(f"the format {fmt.name!r} is registered twice")


def _load(kind: str) -> None:
    with _lock:
        if _loaded[kind]:
            return
        if kind == "sources":
            import robustgen.pipelines.sources  # noqa: F401  (registers the built-ins)
        else:
            import robustgen.pipelines.exports  # noqa: F401
        want = SourceFormat if kind == "sources" else ExportFormat
        register = register_source if kind == "sources" else register_exporter
        for name, obj in load_entry_points(f"robustgen.{'sources' if kind == 'sources' else 'exporters'}"):
            try:  # a broken plugin is logged and left out: it never takes the built-ins down
                register(obj() if callable(obj) and not isinstance(obj, want) else obj)
            except Exception as exc:  # noqa: BLE001
                import logging

                logging.getLogger("robustgen").warning("robustgen: plugin %r is not a usable format: %s", name, exc)
        _loaded[kind] = True


def source_formats() -> dict[str, SourceFormat]:
    """Every source format, built-ins first, then plugins."""
    _load("sources")
    return dict(_sources)


def exporters() -> dict[str, ExportFormat]:
    """Every export format, built-ins first, then plugins."""
    _load("exporters")
    return dict(_exporters)


def source_format(name: str) -> SourceFormat:
    formats = source_formats()
    if name not in formats:
        raise choice_error("--format", name, ["auto", "samples", *formats])
    return formats[name]


def exporter(name: str, option: str = "--to") -> ExportFormat:
    formats = exporters()
    if name not in formats:
        raise choice_error(option, name, formats)
    return formats[name]


@contextmanager
def jsonl_sink(path: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """``write(obj)`` appends one JSON line to a temporary file beside ``path``, renamed to ``path`` only when the
    block completes: an export that stops half-way leaves the previous file (or none), never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield lambda obj: f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place_images(dataset: Dataset, rec: DatasetRecord, out: Path, max_pixels: int | None = None) -> list[str]:
    """Every image of ``rec`` placed under ``out`` at its dataset path (hard-linked, copied, or downscaled to
    ``max_pixels``); their paths relative to ``out``, in prompt order."""
    from robustgen.pipelines.exports import _place_all

    return _place_all(dataset, rec, out, max_pixels)
