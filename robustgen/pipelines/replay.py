"""Replaying what synth wrote: each record's degradations applied again to its clean image, encoded the way synth
stored it, and compared byte for byte with the stored file (every image of a record, two-image ones included)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from robustgen.degrade.apply import replay
from robustgen.errors import RobustgenError, first_line
from robustgen.images import encode, load_image
from robustgen.pipelines.dataset import Dataset
from robustgen.pipelines.output import safe_name
from robustgen.schemas import DatasetRecord
from robustgen.schemas.paths import plain_file_under


@dataclass
class ReplayCount:
    records: int = 0
    images: int = 0
    matched: int = 0
    mismatched: int = 0
    failed: int = 0


def dataset_of(path: Path) -> tuple[Dataset, list[str]] | None:
    """(dataset, shard names) when ``path`` is a synth dataset folder (all its shards) or one of its shards
    (``DIR/data/part-*.jsonl``); None for anything else (a ``degrade`` records.jsonl)."""
    if path.is_dir() and (path / "manifest.json").is_file():
        ds = Dataset.open(path)
        return ds, ds.shards()
    if path.is_file() and path.parent.name == "data" and (path.parent.parent / "manifest.json").is_file():
        return Dataset.open(path.parent.parent), [path.name]
    return None


def _records(ds: Dataset, shards: list[str]) -> Iterator[tuple[str, DatasetRecord | None, str]]:
    for name in shards:
        for n, raw in enumerate((ds.root / "data" / name).read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            where = f"data/{name}:{n}"
            try:
                yield where, DatasetRecord.model_validate(json.loads(raw)), ""
            except ValidationError as exc:
                e = exc.errors()[0]
                yield where, None, f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
            except (ValueError, RecursionError) as exc:
                yield where, None, f"not a JSON record ({first_line(exc)})"


def replay_dataset(
    ds: Dataset,
    shards: list[str],
    out: Path,
    check: bool,
    source_roots: list[Path] = (),
    say: Callable[[str, str], None] = lambda kind, text: None,
) -> ReplayCount:
    """Replay every record of ``shards`` into ``out`` (``ID.EXT``, ``ID-2.EXT`` for a second image); with ``check``
    compare each with the stored file. ``say(kind, line)`` hears of each failure (``skipped``) and mismatch."""
    fmt = ds.manifest.get("image_format") if ds.manifest.get("image_format") in ("jpg", "png") else "jpg"
    count = ReplayCount()
    out.mkdir(parents=True, exist_ok=True)
    for where, rec, why in _records(ds, shards):
        count.records += 1
        if rec is None:
            count.failed += 1
            say("skipped", f"{where}: {why}")
            continue
        try:
            clean = load_image(ds.clean_source(rec, list(source_roots)))
            versions = [(rec.image, rec.degradations), *((x.image, x.degradations) for x in rec.extra_images)]
            for k, (rel, degradations) in enumerate(versions, 1):
                data = encode(replay(clean, degradations), fmt)
                stored = plain_file_under(ds.root, rel).read_bytes() if check else b""  # read before any write
                (out / f"{safe_name(rec.id)}{'' if k == 1 else f'-{k}'}.{fmt}").write_bytes(data)
                count.images += 1
                if check:
                    same = stored == data
                    count.matched += same
                    count.mismatched += not same
                    if not same:
                        say("mismatch", f"{where}: {rec.id}: {rel} differs from its replay")
        except (ValueError, RobustgenError) as exc:
            count.failed += 1
            say("skipped", f"{where}: {rec.id}: {first_line(exc)}")
    return count
