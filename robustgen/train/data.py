"""Training data: a robustgen dataset folder or its ``trl`` export, as a Hugging Face ``Dataset``."""

from __future__ import annotations

import json
from pathlib import Path

from robustgen.schemas import DatasetRecord
from robustgen.schemas.training import TRAINING_FEATURES, training_row


def _rows_from_folder(root: str, version: str = ""):
    """Training rows of a dataset folder in id order, one at a time (only each line's id and offset are held),
    images as encoded bytes (``datasets`` decodes them)."""
    folder = Path(root)
    index = []
    for shard in sorted((folder / "data").glob("*.jsonl")):
        with shard.open("rb") as f:
            offset = 0
            for line in f:
                if line.strip():
                    index.append((str(json.loads(line)["id"]), shard, offset))
                offset += len(line)
    for _, shard, offset in sorted(index):
        with shard.open("rb") as f:
            f.seek(offset)
            rec = DatasetRecord.model_validate_json(f.readline())
        images = [{"bytes": f.read_bytes(), "path": f.name} for f in rec.images_in(folder)]
        yield {**training_row(rec), "images": images}


def load_training_dataset(path: str | Path):
    """A ``datasets.Dataset``: prompt, images, solution, answer, choices, degradations (the ``trl`` export layout)."""
    import datasets

    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file():
        # streamed into an Arrow cache on disk (memory-mapped): no list of every image in memory
        features = datasets.Features.from_dict(TRAINING_FEATURES)
        # ``version`` changes with the shards, so a changed dataset is never served from a stale cache
        stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted((path / "data").glob("*.jsonl"))]
        kwargs = {"root": str(path), "version": str(stamp)}
        return datasets.Dataset.from_generator(_rows_from_folder, features=features, gen_kwargs=kwargs)
    parquet = path / "train.parquet" if path.is_dir() else path
    if parquet.suffix == ".parquet" and parquet.is_file():
        return datasets.load_dataset("parquet", data_files=str(parquet), split="train")
    raise ValueError(f"{path}: expected a robustgen dataset folder or its trl export (train.parquet)")


def with_completions(ds):
    """Add the conversational ``completion`` column SFT trains on (the reference chain)."""
    return ds.map(
        lambda row: {"completion": [{"role": "assistant", "content": [{"type": "text", "text": row["solution"]}]}]}
    )
