"""Training data: a robustgen dataset folder or its ``trl`` export, as a Hugging Face ``Dataset``."""

from __future__ import annotations

from pathlib import Path

from robustgen.schemas import DatasetRecord
from robustgen.schemas.training import training_row


def _rows_from_folder(root: Path):
    from PIL import Image

    records = []
    for shard in sorted((root / "data").glob("*.jsonl")):
        records += [DatasetRecord.model_validate_json(line) for line in shard.read_text().splitlines() if line.strip()]
    for rec in sorted(records, key=lambda r: r.id):
        with Image.open(rec.image_in(root)) as im:
            image = im.convert("RGB")
        yield {**training_row(rec), "images": [image]}


def load_training_dataset(path: str | Path):
    """A ``datasets.Dataset``: prompt, images, solution, answer, choices, degradations (the ``trl`` export layout)."""
    import datasets

    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file():
        return datasets.Dataset.from_list(list(_rows_from_folder(path)))
    parquet = path / "train.parquet" if path.is_dir() else path
    if parquet.suffix == ".parquet" and parquet.is_file():
        return datasets.load_dataset("parquet", data_files=str(parquet), split="train")
    raise ValueError(f"{path}: expected a robustgen dataset folder or its trl export (train.parquet)")


def with_completions(ds):
    """Add the conversational ``completion`` column SFT trains on (the reference chain)."""
    return ds.map(
        lambda row: {"completion": [{"role": "assistant", "content": [{"type": "text", "text": row["solution"]}]}]}
    )
