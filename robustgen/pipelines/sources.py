"""Source readers: every format becomes a stream of ``SourceRow`` values (or per-row ``Failure`` values),
never a list. Image paths resolve under the source's folder; a row that cannot be read is a read failure."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from robustgen.errors import RobustgenError
from robustgen.pipelines.samples import load_samples
from robustgen.schemas import Failure, SourceRow
from robustgen.schemas.paths import regular_file_under, resolve_under

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
    from robustgen.pipelines.formats import source_formats

    formats = source_formats()
    for name, fmt in formats.items():  # a plugin's own suffixes (the built-ins' are above)
        if suffix and suffix in fmt.suffixes:
            return name
    raise SourceError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(formats)})")


def _fail(row_id: str, source: str, error: str) -> Failure:
    return Failure(id=row_id, source=source, stage="read", reason=error)


def _build(**fields: Any) -> SourceRow:
    """A ``SourceRow``; its validation errors become one ``ValueError`` line naming the field."""
    try:
        return SourceRow(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "row"
        msg = (
            "holds bytes that are not valid UTF-8 (or a lone surrogate)"
            if err["type"] == "string_unicode"
            else err["msg"]
        )
        raise ValueError(f"{where}: {msg}") from None


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


def reason(exc: BaseException) -> str:
    """One line saying why a row could not be read, whatever was raised."""
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, UnicodeError):
        return "text is not valid UTF-8"
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, ValueError | SourceError):
        return text[:300] or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _guarded(row_id: Any, where: str, fallback: str, build: Callable[..., Row], *args: Any) -> Row:
    """``build(*args)``, or a read failure naming the row: whatever a hostile row raises fails that row only."""
    try:
        return build(*args)
    except Exception as exc:  # noqa: BLE001  (the boundary: any exception is this row's failure)
        return _fail(_row_id(row_id, fallback), where, reason(exc))


def _row_id(value: Any, fallback: str) -> str:
    if isinstance(value, bool) or value is None or value == "":
        return fallback
    if isinstance(value, str | int):
        try:
            return str(value)
        except ValueError:  # an int too long to print
            return fallback
    return fallback


def read_folder(root: Path, question: str | None) -> Iterator[Row]:
    root = root.resolve()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    for f in files:
        rel = f.relative_to(root)
        row_id = "__".join(rel.with_suffix("").parts)

        def build(rel: Path = rel, row_id: str = row_id) -> Row:
            path = regular_file_under(root, str(rel))  # a symlink pointing out, a FIFO: refused
            # a file name that is not valid UTF-8 fails here, as its own row
            return _build(id=row_id, source=str(rel), image=str(path), question=question or DEFAULT_CAPTION_QUESTION)

        yield _guarded(row_id, str(rel), row_id, build)


def _record_row(path: Path, where: str, fallback_id: str, rec: Any) -> Row:
    """A flat record (jsonl line, csv row) -> input row, or a failure naming the line."""
    if not isinstance(rec, dict):
        return _fail(fallback_id, where, "a line must hold a JSON object")
    return _guarded(
        rec.get("id"),
        where,
        fallback_id,
        lambda: _row(
            _row_id(rec.get("id"), fallback_id),
            where,
            path.parent,
            rec.get("image"),
            rec.get("question"),
            rec.get("answer"),
            rec.get("choices"),
            rec.get("rationale"),
        ),
    )


def _lines(path: Path) -> Iterator[str]:
    """The file's lines as text; bytes that are not UTF-8 survive as lone surrogates (``surrogateescape``), so the
    row that holds them fails alone and a file written back keeps them byte for byte. A UTF-8 BOM is dropped."""
    with path.open("rb") as f:
        for i, raw in enumerate(f):
            if i == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield raw.decode("utf-8", "surrogateescape")


def read_jsonl(path: Path) -> Iterator[Row]:
    for lineno, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where, fallback = f"{path.name}:{lineno}", f"{path.stem}-{lineno}"
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield _fail(fallback, where, f"malformed JSON line: {reason(exc)}")
            continue
        yield _record_row(path, where, fallback, obj)


def table_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line number, cells or None, error) for every record of a CSV/TSV file. A record the csv module cannot
    parse is that record's error; the reading goes on with the next one. Fields may be any size."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(_lines(path), delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"unreadable record: {exc}"
            if reader.line_num < start:  # the reader cannot move on
                return
            continue
        yield start, cells, ""


def _dict_rows(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, str] | None, str]]:
    """Records keyed by the header (surrounding spaces trimmed); a missing header is a source error."""
    rows = table_rows(path, delimiter)
    first = next(rows, None)
    if first is None or first[1] is None or not any(c.strip() for c in first[1]):
        raise SourceError(f"{path}: no header line")
    header = [c.strip() for c in first[1]]
    for lineno, cells, err in rows:
        if cells is None:
            yield lineno, None, err
        elif cells:  # a blank line holds no record
            yield lineno, dict(zip(header, cells, strict=False)), ""


def read_csv(path: Path) -> Iterator[Row]:
    for lineno, rec, err in _dict_rows(path, ","):
        where, fallback = f"{path.name}:{lineno}", f"{path.stem}-{lineno}"
        yield _fail(fallback, where, err) if rec is None else _record_row(path, where, fallback, rec)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},"]')


def _split_array(text: str) -> Iterator[str]:
    """The element texts of a top-level JSON array, found without parsing them, so one broken or absurdly deep
    element fails alone. The rest of the file after an unclosed string is one last element."""
    depth, start = 0, None
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group()
        if tok == '"':  # a string that never closes
            if start is not None:
                yield text[start:]
            return
        if tok[0] == '"':
            continue
        if depth == 0:
            if tok != "[":
                raise SourceError("expected a JSON list of records")
            depth, start = 1, m.end()
            continue
        if depth == 1 and tok in ",]":
            if text[start : m.start()].strip():
                yield text[start : m.start()]
            start = m.end()
            if tok == "]":
                return
            continue
        if tok != ",":
            depth += 1 if tok in "[{" else -1
    if start is not None and text[start:].strip():
        yield text[start:]


def _json_records(path: Path) -> Iterator[tuple[int, Any, str]]:
    """(index, record or None, error) for each element of a JSON list file."""
    text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None  # one element is broken: take them one at a time
    else:
        if not isinstance(data, list):
            raise SourceError(f"{path}: expected a JSON list of records")
        yield from ((i, obj, "") for i, obj in enumerate(data))
        return
    try:
        parts = list(_split_array(text))
    except SourceError as exc:
        raise SourceError(f"{path}: {exc}") from None
    for i, part in enumerate(parts):
        try:
            yield i, json.loads(part), ""
        except (ValueError, RecursionError) as exc:
            yield i, None, f"malformed JSON record: {reason(exc)}"


def read_llava(path: Path) -> Iterator[Row]:
    root = path.parent

    def build(obj: Any, row_id: str, where: str) -> Row:
        if not isinstance(obj, dict):
            raise ValueError("a record must be a JSON object")
        turns = obj.get("conversations") or []
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise ValueError("conversations must be a list of turns")
        human = next((t.get("value", "") for t in turns if t.get("from") in ("human", "user")), None)
        gpt = next((t.get("value", "") for t in turns if t.get("from") in ("gpt", "assistant")), None)
        if not isinstance(human, str) or not isinstance(gpt, str):
            raise ValueError("conversations need a human and a gpt turn")
        return _row(row_id, where, root, obj.get("image"), human.replace("<image>", "").strip(), gpt)

    for i, obj, err in _json_records(path):
        where, fallback = f"{path.name}[{i}]", f"{path.stem}-{i}"
        row_id = _row_id(obj.get("id") if isinstance(obj, dict) else None, fallback)
        yield _fail(row_id, where, err) if err else _guarded(row_id, where, fallback, build, obj, row_id, where)


def read_aokvqa(path: Path, coco_root: Path | None, split: str | None) -> Iterator[Row]:
    coco_root = coco_root or path.parent
    if split is None:
        m = re.search(r"(train|val|test)", path.stem)
        split = m.group(1) if m else "val"

    def build(obj: Any, row_id: str, where: str) -> Row:
        if not isinstance(obj, dict):
            raise ValueError("a record must be a JSON object")
        if not isinstance(obj["choices"], list):
            raise ValueError("choices must be a list")
        choices = [str(c) for c in obj["choices"]]
        idx = _integer(obj["correct_choice_idx"], "correct_choice_idx")
        if not 0 <= idx < len(choices):
            raise ValueError(f"correct_choice_idx {idx} is out of range")
        if not isinstance(obj["question"], str):
            raise ValueError("question must be text")
        question = obj["question"].strip() + "\n" + "\n".join(f"{k}. {c}" for k, c in enumerate(choices))
        image = f"{split}2017/{_integer(obj['image_id'], 'image_id'):012d}.jpg"
        rationales = obj.get("rationales") or []
        rationale = " ".join(str(r) for r in rationales) if isinstance(rationales, list) else str(rationales)
        return _row(row_id, where, coco_root, image, question, str(idx), choices, rationale or None)

    for i, obj, err in _json_records(path):
        where, fallback = f"{path.name}[{i}]", f"{path.stem}-{i}"
        row_id = _row_id(obj.get("question_id") if isinstance(obj, dict) else None, fallback)
        yield _fail(row_id, where, err) if err else _guarded(row_id, where, fallback, build, obj, row_id, where)


def _integer(value: Any, field: str) -> int:
    """A whole number from a JSON value (42, 42.0, "42"); Infinity, NaN, 1e400, 4.5 are errors naming the field."""
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a whole number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{field} must be a whole number, got {value!r}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a whole number, got {str(value)[:40]!r}") from None


_LETTERS = "ABCDEFGHIJ"
IMAGE_REF_MAX = 64  # VLMEvalKit: an image cell this short names the row whose image it shares


def _tsv_shared_images(path: Path) -> dict[str, str]:
    """VLMEvalKit stores a repeated image once: other rows hold that row's index in their image cell. The
    images so referenced, by index (two passes over the file, only when such references exist)."""
    wanted: set[str] = set()
    for _, rec, _ in _dict_rows(path, "\t"):
        if rec is not None and 0 < len((rec.get("image") or "").strip()) <= IMAGE_REF_MAX:
            wanted.add(rec["image"].strip())
    if not wanted:
        return {}
    found: dict[str, str] = {}
    for _, rec, _ in _dict_rows(path, "\t"):
        if rec is not None and (rec.get("index") or "").strip() in wanted:
            image = (rec.get("image") or "").strip()
            if len(image) > IMAGE_REF_MAX:
                found[rec["index"].strip()] = image
    return found


def read_vlmeval_tsv(path: Path) -> Iterator[Row]:
    shared = _tsv_shared_images(path)

    def build(rec: dict[str, str], row_id: str, where: str) -> Row:
        b64 = (rec.get("image") or "").strip()
        if not b64:
            raise ValueError("empty 'image' column")
        if len(b64) <= IMAGE_REF_MAX:
            if b64 not in shared:
                raise ValueError(f"image cell {b64!r} names no row holding an image")
            b64 = shared[b64]
        choices = [
            rec[c].strip()
            for c in _LETTERS
            if rec.get(c) not in (None, "") and str(rec[c]).strip() and str(rec[c]).strip().lower() != "nan"
        ]
        answer = (rec.get("answer") or "").strip()
        if choices and answer.upper() in _LETTERS[: len(choices)]:
            answer = str(_LETTERS.index(answer.upper()))
        question = (rec.get("question") or "").strip()
        if not question or not answer:
            raise ValueError("missing 'question' or 'answer'")
        try:
            data = base64.b64decode(b64, validate=False)
        except ValueError:
            raise ValueError("the image column is not valid base64") from None
        return _build(
            id=row_id,
            source=where,
            image_bytes=data,
            question=question,
            answer=answer,
            choices=choices if len(choices) >= 2 else None,
            rationale=rec.get("hint") or None,
        )

    for lineno, rec, err in _dict_rows(path, "\t"):
        where = f"{path.name}:{lineno}"
        row_id = f"{path.stem}-{(rec or {}).get('index') or lineno}"
        yield (_fail(row_id, where, err) if rec is None else _guarded(row_id, where, row_id, build, rec, row_id, where))


def read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = path.parent
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable parquet file ({reason(exc)})") from None

    def build(rec: dict[str, Any], row_id: str, where: str) -> Row:
        img = rec.get("image")
        if isinstance(img, dict) and img.get("bytes"):
            data = bytes(img["bytes"])
        elif isinstance(img, bytes | bytearray):
            data = bytes(img)
        else:
            ref = img.get("path") if isinstance(img, dict) else img
            return _row(
                row_id,
                where,
                root,
                ref,
                rec.get("question"),
                rec.get("answer"),
                rec.get("choices"),
                rec.get("rationale"),
            )
        q, a = rec.get("question"), rec.get("answer")
        if not q or a in (None, ""):
            raise ValueError("missing 'question' or 'answer'")
        return _build(
            id=row_id,
            source=where,
            image_bytes=data,
            question=str(q).strip(),
            answer=str(a).strip(),
            choices=_choices(rec.get("choices")),
            rationale=rec.get("rationale") or None,
        )

    n = 0
    for group in range(pf.num_row_groups):
        size = pf.metadata.row_group(group).num_rows
        try:
            records = pf.read_row_group(group).to_pylist()
        except (pa.ArrowException, OSError) as exc:  # a damaged row group fails its own rows, no more
            for k in range(n, n + size):
                yield _fail(f"{path.stem}-{k}", f"{path.name}[{k}]", f"row group {group} unreadable: {reason(exc)}")
            n += size
            continue
        for rec in records:
            where, fallback = f"{path.name}[{n}]", f"{path.stem}-{n}"
            row_id = _row_id(rec.get("id"), fallback)
            yield _guarded(row_id, where, fallback, build, rec, row_id, where)
            n += 1


def read_source(
    source: str,
    fmt: str = "auto",
    question: str | None = None,
    coco_root: str | None = None,
    split: str | None = None,
) -> Iterator[Row]:
    """Rows of ``source`` ('samples' or a path) in ``fmt`` (a built-in format or a ``robustgen.sources`` plugin);
    ``SourceError`` if the source itself is unusable."""
    from robustgen.pipelines.formats import SourceOptions, source_format, source_formats

    if fmt not in ("auto", "samples"):
        try:
            source_format(fmt)
        except RobustgenError as exc:
            raise SourceError(str(exc)) from None
    if source == "samples" and fmt in ("auto", "samples"):
        return read_samples()
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or folder")
    if not (path.is_dir() or path.is_file()):  # a FIFO or a device would block or never end
        raise SourceError(f"{source}: not a regular file or a folder")
    if fmt == "auto":
        fmt = detect_format(path)
    reader = source_formats()[fmt] if fmt != "samples" else None
    if reader is None:
        raise SourceError(f"{source}: --format samples reads the built-in samples only; pass --source samples")
    if reader.folder and not path.is_dir():
        raise SourceError(f"{source}: --format {fmt} needs a folder")
    if not reader.folder and path.is_dir():
        raise SourceError(f"{source}: is a folder; use --format folder (or auto)")
    return reader.read(path, SourceOptions(question, coco_root, split))


def _register_builtins() -> None:
    from robustgen.pipelines.formats import SourceFormat, register_source

    builtins = [
        SourceFormat("folder", lambda p, o: read_folder(p, o.question), help="a folder of images", folder=True),
        SourceFormat("jsonl", lambda p, o: read_jsonl(p), (".jsonl", ".ndjson"), "one JSON row per line"),
        SourceFormat("csv", lambda p, o: read_csv(p), (".csv",), "a CSV with a header"),
        SourceFormat("llava", lambda p, o: read_llava(p), (".json",), "LLaVA-style conversations"),
        SourceFormat(
            "aokvqa",
            lambda p, o: read_aokvqa(p, Path(o.coco_root) if o.coco_root else None, o.split),
            (".json",),
            "A-OKVQA with COCO images",
        ),
        SourceFormat("vlmeval-tsv", lambda p, o: read_vlmeval_tsv(p), (".tsv",), "a VLMEvalKit TSV"),
        SourceFormat("parquet", lambda p, o: read_parquet(p), (".parquet",), "a parquet / HF datasets export"),
    ]
    for fmt in builtins:
        register_source(fmt)


_register_builtins()
