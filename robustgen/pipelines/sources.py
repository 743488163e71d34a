"""Source readers: every format becomes a stream of ``SourceRow`` values (or per-row ``Failure`` values),
never a list. Image paths resolve under the source's folder; a row that cannot be read is a read failure."""

from __future__ import annotations

import base64
import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from robustgen.errors import RobustgenError
from robustgen.pipelines.samples import load_samples
from robustgen.schemas import Failure, SourceRow

FORMATS = ("auto", "samples", "folder", "jsonl", "csv", "llava", "aokvqa", "vlmeval-tsv", "parquet")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
DEFAULT_CAPTION_QUESTION = "Describe the main content of this image in one sentence."

Row = SourceRow | Failure


class SourceError(RobustgenError):
    """The source as a whole cannot be read (missing file, unknown format)."""


def detect_format(path: Path) -> str:
    if str(path) == "samples":
        return "samples"
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "vlmeval-tsv"
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".json":
        head = path.read_text(encoding="utf-8", errors="replace")[:20000]
        if "correct_choice_idx" in head or "image_id" in head:
            return "aokvqa"
        return "llava"
    raise SourceError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS[2:])})")


def _fail(row_id: str, source: str, error: str) -> Failure:
    return Failure(id=row_id, source=source, stage="read", reason=error)


def _build(**fields: Any) -> SourceRow:
    """A ``SourceRow``; its validation errors become one ``ValueError`` line naming the field."""
    try:
        return SourceRow(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "row"
        raise ValueError(f"{where}: {err['msg']}") from None


def resolve_under(root: Path, ref: str) -> Path:
    """``ref`` resolved under ``root``; ValueError when it escapes (``../``, absolute paths elsewhere)."""
    root = root.resolve()
    p = Path(ref)
    full = (p if p.is_absolute() else root / p).resolve()
    if not full.is_relative_to(root):
        raise ValueError(f"image path {ref!r} escapes the source root {root}")
    return full


def _choices(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = value.split("|")
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError("choices must be a list of at least two options")
    return [str(c).strip() for c in value]


def _row(
    row_id: str,
    source: str,
    root: Path,
    image: Any,
    question: Any,
    answer: Any,
    choices: Any = None,
    rationale: Any = None,
) -> Row:
    if not isinstance(image, str) or not image.strip():
        raise ValueError("missing 'image'")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing 'question'")
    if answer is None or str(answer).strip() == "":
        raise ValueError("missing 'answer'")
    path = image if image.startswith("skimage:") else str(resolve_under(root, image))
    return _build(
        id=row_id,
        source=source,
        image=path,
        question=question.strip(),
        answer=str(answer).strip(),
        choices=_choices(choices),
        rationale=(str(rationale).strip() or None) if rationale else None,
    )


def read_samples() -> Iterator[Row]:
    yield from load_samples()


def read_folder(root: Path, question: str | None) -> Iterator[Row]:
    root = root.resolve()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    for f in files:
        rel = f.relative_to(root)
        row_id = "__".join(rel.with_suffix("").parts)
        try:
            path = resolve_under(root, str(rel))  # a symlink pointing out of the folder is refused
            if not path.is_file():
                raise ValueError(f"{rel}: not a regular file")
            # a file name that is not valid UTF-8 fails here, as its own row
            yield _build(id=row_id, source=str(rel), image=str(path), question=question or DEFAULT_CAPTION_QUESTION)
        except (ValueError, OSError) as exc:
            yield _fail(row_id, str(rel), str(exc))


def _record_row(path: Path, where: str, fallback_id: str, rec: dict[str, Any]) -> Row:
    """A flat record (jsonl line, csv row) -> input row, or a failure naming the line."""
    row_id = str(rec.get("id") or fallback_id)
    try:
        return _row(
            row_id,
            where,
            path.parent,
            rec.get("image"),
            rec.get("question"),
            rec.get("answer"),
            rec.get("choices"),
            rec.get("rationale"),
        )
    except ValueError as exc:
        return _fail(row_id, where, str(exc))


def read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where, fallback = f"{path.name}:{lineno}", f"{path.stem}-{lineno}"
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("a line must hold a JSON object")
            except (json.JSONDecodeError, ValueError) as exc:
                yield _fail(fallback, where, f"malformed JSON line: {str(exc).splitlines()[0]}")
                continue
            yield _record_row(path, where, fallback, obj)


def read_csv(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for lineno, rec in enumerate(csv.DictReader(f), 2):
            yield _record_row(path, f"{path.name}:{lineno}", f"{path.stem}-{lineno}", rec)


def _load_json_list(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of records")
    return data


def read_llava(path: Path) -> Iterator[Row]:
    root = path.parent
    for i, obj in enumerate(_load_json_list(path)):
        where = f"{path.name}[{i}]"
        row_id = str(obj.get("id", f"{path.stem}-{i}")) if isinstance(obj, dict) else f"{path.stem}-{i}"
        try:
            if not isinstance(obj, dict):
                raise ValueError("a record must be a JSON object")
            turns = obj.get("conversations") or []
            human = next((t.get("value", "") for t in turns if t.get("from") in ("human", "user")), None)
            gpt = next((t.get("value", "") for t in turns if t.get("from") in ("gpt", "assistant")), None)
            if human is None or gpt is None:
                raise ValueError("conversations need a human and a gpt turn")
            question = human.replace("<image>", "").strip()
            yield _row(row_id, where, root, obj.get("image"), question, gpt)
        except (ValueError, AttributeError, TypeError) as exc:
            yield _fail(row_id, where, str(exc))


def read_aokvqa(path: Path, coco_root: Path | None, split: str | None) -> Iterator[Row]:
    coco_root = coco_root or path.parent
    if split is None:
        m = re.search(r"(train|val|test)", path.stem)
        split = m.group(1) if m else "val"
    for i, obj in enumerate(_load_json_list(path)):
        where = f"{path.name}[{i}]"
        row_id = str(obj.get("question_id", f"{path.stem}-{i}")) if isinstance(obj, dict) else f"{path.stem}-{i}"
        try:
            choices = [str(c) for c in obj["choices"]]
            idx = int(obj["correct_choice_idx"])
            if not 0 <= idx < len(choices):
                raise ValueError(f"correct_choice_idx {idx} is out of range")
            question = obj["question"].strip() + "\n" + "\n".join(f"{k}. {c}" for k, c in enumerate(choices))
            image = f"{split}2017/{int(obj['image_id']):012d}.jpg"
            rationale = " ".join(obj.get("rationales") or []) or None
            yield _row(row_id, where, coco_root, image, question, str(idx), choices, rationale)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            yield _fail(row_id, where, msg)


def read_vlmeval_tsv(path: Path) -> Iterator[Row]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    letters = "ABCDEFGHIJ"
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for lineno, rec in enumerate(csv.DictReader(f, delimiter="\t"), 2):
            where = f"{path.name}:{lineno}"
            row_id = f"{path.stem}-{rec.get('index') or lineno}"
            try:
                b64 = (rec.get("image") or "").strip()
                if not b64:
                    raise ValueError("empty 'image' column")
                choices = [
                    rec[c].strip()
                    for c in letters
                    if rec.get(c) not in (None, "") and str(rec[c]).strip() and str(rec[c]).strip().lower() != "nan"
                ]
                answer = (rec.get("answer") or "").strip()
                if choices and answer.upper() in letters[: len(choices)]:
                    answer = str(letters.index(answer.upper()))
                question = (rec.get("question") or "").strip()
                if not question or not answer:
                    raise ValueError("missing 'question' or 'answer'")
                try:
                    data = base64.b64decode(b64, validate=False)
                except ValueError:
                    raise ValueError("the image column is not valid base64") from None
                yield _build(
                    id=row_id,
                    source=where,
                    image_bytes=data,
                    question=question,
                    answer=answer,
                    choices=choices if len(choices) >= 2 else None,
                    rationale=rec.get("hint") or None,
                )
            except ValueError as exc:
                yield _fail(row_id, where, str(exc))


def read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    root = path.parent
    pf = pq.ParquetFile(path)
    n = 0
    for batch in pf.iter_batches(batch_size=64):
        for rec in batch.to_pylist():
            n += 1
            where = f"{path.name}[{n - 1}]"
            row_id = str(rec.get("id") or f"{path.stem}-{n - 1}")
            try:
                img = rec.get("image")
                data = None
                if isinstance(img, dict) and img.get("bytes"):
                    data = bytes(img["bytes"])
                elif isinstance(img, bytes | bytearray):
                    data = bytes(img)
                else:
                    ref = img.get("path") if isinstance(img, dict) else img
                    yield _row(
                        row_id,
                        where,
                        root,
                        ref,
                        rec.get("question"),
                        rec.get("answer"),
                        rec.get("choices"),
                        rec.get("rationale"),
                    )
                    continue
                q, a = rec.get("question"), rec.get("answer")
                if not q or a in (None, ""):
                    raise ValueError("missing 'question' or 'answer'")
                yield _build(
                    id=row_id,
                    source=where,
                    image_bytes=data,
                    question=str(q).strip(),
                    answer=str(a).strip(),
                    choices=_choices(rec.get("choices")),
                    rationale=rec.get("rationale") or None,
                )
            except ValueError as exc:
                yield _fail(row_id, where, str(exc))


def read_source(
    source: str,
    fmt: str = "auto",
    question: str | None = None,
    coco_root: str | None = None,
    split: str | None = None,
) -> Iterator[Row]:
    """Rows of ``source`` ('samples' or a path) in ``fmt``; ``SourceError`` if the source itself is unusable."""
    if fmt not in FORMATS:
        raise SourceError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if source == "samples" and fmt in ("auto", "samples"):
        return read_samples()
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or folder")
    fmt = detect_format(path) if fmt == "auto" else fmt
    readers = {
        "folder": lambda: read_folder(path, question),
        "jsonl": lambda: read_jsonl(path),
        "csv": lambda: read_csv(path),
        "llava": lambda: read_llava(path),
        "aokvqa": lambda: read_aokvqa(path, Path(coco_root) if coco_root else None, split),
        "vlmeval-tsv": lambda: read_vlmeval_tsv(path),
        "parquet": lambda: read_parquet(path),
    }
    if fmt == "folder" and not path.is_dir():
        raise SourceError(f"{source}: --format folder needs a folder")
    if fmt != "folder" and path.is_dir():
        raise SourceError(f"{source}: is a folder; use --format folder (or auto)")
    return readers[fmt]()
