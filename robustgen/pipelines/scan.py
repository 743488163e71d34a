"""Reading the source once into input chunks (JSONL files under the work folder), and the queue of those chunks
that every executor draws from."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pydantic import ValidationError

from robustgen.errors import RobustgenError
from robustgen.images import SAMPLE_PREFIX, read_bytes
from robustgen.pipelines.config import SynthConfig
from robustgen.pipelines.output import WORK_DIR, Output
from robustgen.pipelines.resume import READ_FAILURES
from robustgen.pipelines.sources import IMAGE_SUFFIXES, read_source
from robustgen.schemas import Failure, SourceRow

#: rows per input chunk: the unit a worker claims, reads, degrades (and for an in-task teacher annotates)
CHUNK_ROWS = 64


class ChunkQueue:
    """The input chunks in scan order, as the scan writes them; executors take them from the front, and count the
    rows they finish. Thread-safe: the scan, the driver's work and Ray's progress run on different threads."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.rows = 0  # rows in the chunks queued so far
        self.taken = 0  # chunks handed out by ``take``
        self.done = 0  # rows finished (written or failed), by anyone
        self.scanned = False
        self.halted = False  # the run is stopping: no more chunks are handed out
        self.error: BaseException | None = None  # the scan's own error, re-raised by the run
        self._cond = threading.Condition()

    def add(self, rel: str, rows: int) -> None:
        with self._cond:
            self.chunks.append(rel)
            self.rows += rows
            self._cond.notify_all()

    def close(self, error: BaseException | None = None) -> None:
        with self._cond:
            self.scanned, self.error = True, error
            self._cond.notify_all()

    def wait_rows(self, at_least: int) -> tuple[int, bool]:
        """Block until ``at_least`` rows are queued or the scan is over; (rows queued, scan complete)."""
        with self._cond:
            self._cond.wait_for(lambda: self.scanned or self.rows >= at_least)
            return self.rows, self.scanned

    def wait_scanned(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.scanned)

    def take(self) -> str | None:
        """The next chunk in order, waiting for the scan if needed; None once every chunk has been handed out."""
        with self._cond:
            self._cond.wait_for(lambda: self.taken < len(self.chunks) or self.scanned or self.halted)
            if self.halted or self.error is not None or self.taken >= len(self.chunks):
                return None
            self.taken += 1
            return self.chunks[self.taken - 1]

    def halt(self) -> None:
        """Hand out no more chunks (the run failed elsewhere); a chunk in hand is finished."""
        with self._cond:
            self.halted = True
            self._cond.notify_all()

    def untaken(self) -> list[str]:
        """Chunks not yet handed out (for workers elsewhere, which claim them)."""
        with self._cond:
            return self.chunks[self.taken :]

    def count(self, rows: int) -> None:
        with self._cond:
            self.done += rows
            self._cond.notify_all()

    def finished(self) -> bool:
        """Every queued row is accounted for and the scan is over."""
        with self._cond:
            return self.scanned and self.done >= self.rows


def _chunk_line(row: SourceRow) -> str | Failure:
    """The row as one chunk line, checked to read back as the same row: a value that validates in Python but not
    from its own JSON fails this row here, not the worker's whole chunk later."""
    try:
        line = row.model_dump_json()
        SourceRow.model_validate_json(line)
    except (ValidationError, ValueError) as exc:
        return Failure(id=row.id, source=row.source, stage="read", reason=f"the row cannot be stored: {exc}"[:300])
    return line + "\n"


def stream_inputs(cfg: SynthConfig, out: Output, done: set[str], retry: set[str], queue: ChunkQueue) -> int:
    """Read the source once, writing pending rows to input chunks (each queued as it is written) and read failures
    to ``READ_FAILURES``; returns the rows read. ``embed``: the chunks carry the image bytes (an object store's
    workers may be on other machines and share nothing but the store)."""
    out.delete(f"{WORK_DIR}/inputs")
    out.delete(f"{WORK_DIR}/claims")
    buf: list[str] = []
    total, n_chunks, read_failures = 0, 0, []
    embed = not out.local
    seen: dict[str, str] = {}
    rows = read_source(cfg.source, cfg.format, cfg.question, cfg.coco_root, cfg.split)

    def flush() -> None:
        nonlocal n_chunks
        if buf:
            rel = f"{WORK_DIR}/inputs/chunk-{n_chunks:05d}.jsonl"
            out.write_text(rel, "".join(buf))
            n_chunks += 1
            queue.add(rel, len(buf))
            buf.clear()

    for row in rows:
        if cfg.limit is not None and total >= cfg.limit:
            break
        if queue.halted:  # the run failed or was interrupted elsewhere: stop reading, it will not be used
            return total
        total += 1
        if row.id in seen:
            row = Failure(
                id=f"{row.id}@{row.source}",
                source=row.source,
                stage="read",
                reason=f"duplicate id {row.id!r} (first at {seen[row.id]})",
            )
        seen.setdefault(row.id, row.source)
        if isinstance(row, Failure):
            read_failures.append(row)
            continue
        if row.id in done:
            continue
        if row.id in retry:
            row = row.model_copy(update={"retry": True})  # its cached teacher replies led to the failure
        if embed and row.image_bytes is None and not row.image.startswith(SAMPLE_PREFIX):
            try:
                row = row.model_copy(update={"image_bytes": read_bytes(row.image)})
            except RobustgenError as exc:
                read_failures.append(Failure(id=row.id, source=row.source, stage="read", reason=str(exc)))
                continue
        line = _chunk_line(row)
        if isinstance(line, Failure):
            read_failures.append(line)
            continue
        buf.append(line)
        if len(buf) >= CHUNK_ROWS:
            flush()
    flush()
    if total == 0:  # a typo'd folder or an empty file must not look like a finished run
        what = f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))})" if Path(cfg.source).is_dir() else "no rows"
        raise RobustgenError(
            f"{cfg.source}: {what} to read; nothing was written (fix the source, then re-run with --overwrite)"
        )
    lines = "".join(
        json.dumps(f.model_dump(mode="json", exclude_none=True), sort_keys=True) + "\n" for f in read_failures
    )
    out.write_text(READ_FAILURES, lines)
    return total
