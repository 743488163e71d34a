"""An index of a dataset's records for the viewer: where each line lies and the few fields the grid filters on,
in flat arrays (about 40 bytes a record), never the records themselves. A record is read back from its shard by
offset when a page shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from robustgen.pipelines.dataset import Dataset

PAGE = 48  # records on a grid page


class _Step(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    stage: str
    severity: float
    shown_severity: float | None = None

    @property
    def shown(self) -> float:
        """The severity the record states (under calibration the one drawn, else the one applied)."""
        return self.severity if self.shown_severity is None else self.shown_severity


class _Quality(BaseModel):
    model_config = ConfigDict(extra="ignore")
    passed: bool | None = None


class _Line(BaseModel):
    """The part of a record line the index keeps (the rest is read back when shown)."""

    model_config = ConfigDict(extra="ignore")
    id: str
    degradations: list[_Step] = []
    chain_quality: _Quality | None = None


@dataclass(frozen=True)
class Filters:
    """What the grid shows: a record matches when one of its steps passes every step filter (degrader, stage,
    severity range, on the severity the record states) and the record passes the others."""

    degrader: str = ""
    stage: str = ""
    min_severity: float | None = None
    max_severity: float | None = None
    gate: str = ""  # "failed": chains the quality gate turned down
    q: str = ""  # text in the question or the chain (case-insensitive)

    def query(self) -> dict[str, str]:
        out = {"degrader": self.degrader, "stage": self.stage, "gate": self.gate, "q": self.q}
        if self.min_severity is not None:
            out["min_severity"] = f"{self.min_severity:g}"
        if self.max_severity is not None:
            out["max_severity"] = f"{self.max_severity:g}"
        return {k: v for k, v in out.items() if v}


@dataclass
class RecordIndex:
    """Every readable record line of a dataset, in id order."""

    dataset: Dataset
    ids: list[str] = field(default_factory=list)
    shard: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gate: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # 1 passed, 0 failed, -1 not checked
    step_row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    step_name: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    step_stage: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    step_severity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    names: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "data/x.jsonl:7: why", for lines the grid cannot show
    _row_of: dict[str, int] = field(default_factory=dict)
    _hits: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, dataset: Dataset) -> RecordIndex:
        idx = cls(dataset)
        idx.shards = dataset.shards()
        name_ids: dict[str, int] = {}
        stage_ids: dict[str, int] = {}
        rows: list[tuple[str, int, int, int]] = []
        steps: list[tuple[int, int, int, float]] = []  # (line number in `rows`, name, stage, severity)
        for s, shard in enumerate(idx.shards):
            with (dataset.root / "data" / shard).open("rb") as f:
                offset = 0
                for lineno, line in enumerate(f, 1):
                    start, offset = offset, offset + len(line)
                    if not line.strip():
                        continue
                    try:
                        rec = _Line.model_validate_json(line)
                    except ValidationError as exc:
                        idx.unreadable.append(f"data/{shard}:{lineno}: {exc.errors()[0]['msg']}")
                        continue
                    n = len(rows)
                    passed = rec.chain_quality.passed if rec.chain_quality else None
                    rows.append((rec.id, s, start, -1 if passed is None else int(passed)))
                    for d in rec.degradations:
                        steps.append(
                            (
                                n,
                                name_ids.setdefault(d.name, len(name_ids)),
                                stage_ids.setdefault(d.stage, len(stage_ids)),
                                d.shown,
                            )
                        )
        order = sorted(range(len(rows)), key=lambda i: rows[i][0])
        rank = np.empty(len(rows), np.int32)
        rank[order] = np.arange(len(rows), dtype=np.int32)
        idx.ids = [rows[i][0] for i in order]
        idx.shard = np.array([rows[i][1] for i in order], np.int32)
        idx.offset = np.array([rows[i][2] for i in order], np.int64)
        idx.gate = np.array([rows[i][3] for i in order], np.int8)
        if steps:
            arr = np.array(steps, dtype=np.float64)
            idx.step_row = rank[arr[:, 0].astype(np.int64)]
            idx.step_name = arr[:, 1].astype(np.int32)
            idx.step_stage = arr[:, 2].astype(np.int32)
            idx.step_severity = arr[:, 3].astype(np.float32)
        idx.names = list(name_ids)
        idx.stages = list(stage_ids)
        idx._row_of = {rid: i for i, rid in enumerate(idx.ids)}
        return idx

    def __len__(self) -> int:
        return len(self.ids)

    def line(self, row: int) -> bytes:
        with (self.dataset.root / "data" / self.shards[int(self.shard[row])]).open("rb") as f:
            f.seek(int(self.offset[row]))
            return f.readline()

    def record(self, rid: str) -> dict[str, Any] | None:
        """The record with id ``rid`` as written (a JSON object), or None when there is none."""
        row = self._row_of.get(rid)
        if row is None:
            return None
        obj = json.loads(self.line(row))
        return obj if isinstance(obj, dict) and obj.get("id") == rid else None

    def rows(self, f: Filters) -> np.ndarray:
        """The rows (id order) that pass every filter but the text one."""
        keep = np.ones(len(self.ids), bool)
        if f.degrader or f.stage or f.min_severity is not None or f.max_severity is not None:
            step = np.ones(len(self.step_row), bool)
            if f.degrader:
                step &= self.step_name == (self.names.index(f.degrader) if f.degrader in self.names else -1)
            if f.stage:
                step &= self.step_stage == (self.stages.index(f.stage) if f.stage in self.stages else -1)
            if f.min_severity is not None:
                step &= self.step_severity >= np.float32(f.min_severity) - np.float32(1e-6)
            if f.max_severity is not None:
                step &= self.step_severity <= np.float32(f.max_severity) + np.float32(1e-6)
            keep = np.zeros(len(self.ids), bool)
            keep[self.step_row[step]] = True
        if f.gate == "failed":
            keep &= self.gate == 0
        elif f.gate == "passed":
            keep &= self.gate == 1
        return np.flatnonzero(keep)

    def page(self, f: Filters, page: int) -> tuple[list[dict[str, Any]], int | None, bool]:
        """The records of grid page ``page`` (from 1), the number of matches (None when a text search stopped
        counting at the page's end), and whether another page follows."""
        rows = self.rows(f)
        start = (page - 1) * PAGE
        if not f.q:
            chosen = rows[start : start + PAGE]
            return [self._shown(r) for r in chosen], len(rows), len(rows) > start + PAGE
        needle = f.q.lower()
        hits = self._text_hits(needle)
        if hits is not None:
            rows = rows[np.isin(rows, hits, assume_unique=True)]
        found: list[dict[str, Any]] = []
        seen = 0
        for r in rows:  # each candidate line is read back and its question and chain searched
            obj = self._matching(int(r), needle)
            if obj is None:
                continue
            seen += 1
            if seen > start + PAGE:
                return found, None, True
            if seen > start:
                found.append(obj)
        return found, seen, False

    def _text_hits(self, needle: str) -> np.ndarray | None:
        """The rows whose raw line may hold ``needle`` (found by reading each shard straight through in large blocks,
        a few hundred MB a second), a superset that ``_matching`` narrows; None when any row may (a needle that is
        not plain ASCII: JSON may escape it, and lower-casing may map other characters onto it). The last few
        searches are kept, so paging through one costs nothing."""
        if not needle.isascii() or not needle.isprintable():
            return None
        if needle in self._hits:
            return self._hits[needle]
        # as the line spells it (a quote or a backslash escaped), plus the few characters whose lower case is ASCII
        keys = [json.dumps(needle)[1:-1].encode("ascii"), *_LOWER_TO_ASCII]
        found: list[np.ndarray] = []
        for s, shard in enumerate(self.shards):
            mine = np.flatnonzero(self.shard == s)
            starts = self.offset[mine]
            order = np.argsort(starts)
            starts, mine = starts[order], mine[order]
            at: list[int] = []
            longest = max(map(len, keys))
            with (self.dataset.root / "data" / shard).open("rb") as f:
                base, tail = 0, b""
                while True:
                    chunk = f.read(1 << 24)
                    block = (tail + chunk).lower()
                    if not chunk:
                        cut = len(block)
                    else:  # whole lines only (or, in a line longer than a block, all but a key's length)
                        cut = block.rfind(b"\n") + 1 or max(0, len(block) - longest + 1)
                    for key in keys:
                        pos = block.find(key, 0, cut + len(key) - 1)
                        while pos != -1:
                            at.append(base + pos)
                            pos = block.find(key, pos + 1, cut + len(key) - 1)
                    if not chunk:
                        break
                    base, tail = base + cut, block[cut:]
            if at:
                where = np.searchsorted(starts, np.asarray(at, np.int64), side="right") - 1
                found.append(mine[np.unique(where[where >= 0])])
        hits = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        if len(self._hits) >= 8:
            self._hits.pop(next(iter(self._hits)))
        self._hits[needle] = hits
        return hits

    def _matching(self, row: int, needle: str) -> dict[str, Any] | None:
        obj = json.loads(self.line(row))
        chain = obj.get("chain") if isinstance(obj.get("chain"), dict) else {}
        parts = (obj.get("question"), *(chain.get(k) for k in ("influence", "reasoning", "conclusion", "answer")))
        hit = any(needle in str(x).lower() for x in parts if x)
        return self._shown(row, obj) if hit else None

    def _shown(self, row: int, obj: dict[str, Any] | None = None) -> dict[str, Any]:
        obj = obj if obj is not None else json.loads(self.line(row))
        steps = obj.get("degradations") if isinstance(obj.get("degradations"), list) else []
        shown = []
        for d in steps:
            if isinstance(d, dict):
                sev = d.get("shown_severity") if d.get("shown_severity") is not None else d.get("severity")
                shown.append((str(d.get("name")), number(sev)))
        return {"id": self.ids[row], "question": str(obj.get("question") or ""), "steps": shown,
                "gate": int(self.gate[row])}  # fmt: skip


#: characters outside ASCII whose lower case holds ASCII letters (the Kelvin sign, the dotted capital I), as a line
#: may hold them (UTF-8, or a JSON escape): a line with one is a candidate for any ASCII needle
_LOWER_TO_ASCII = ("\u212a".encode("utf-8").lower(), "\u0130".encode("utf-8").lower(), b"\\u212a", b"\\u0130")


def number(x: Any, places: int = 2) -> str:
    """A number from a record as text (whatever the record holds: a string, a huge integer, nothing)."""
    try:
        return f"{float(x):.{places}f}"
    except (TypeError, ValueError, OverflowError):
        return "?"
