"""A third-party export format: one JSON line per record with its image paths, the question, the answer and the
reasoning, streamed to a temporary file that replaces ``pairs.jsonl`` only when the export completes."""

from __future__ import annotations

from pathlib import Path

from robustgen.pipelines.dataset import Dataset
from robustgen.pipelines.formats import ExportFormat, jsonl_sink, place_images


def export_pairs(dataset: Dataset, out: Path, max_pixels: int | None) -> Path:
    path = out / "pairs.jsonl"
    with jsonl_sink(path) as write:
        for rec in dataset.iter_records():  # one record at a time: memory stays flat
            images = place_images(dataset, rec, out, max_pixels)
            write(
                {
                    "id": rec.id,
                    "images": images,
                    "question": rec.question,
                    "answer": rec.answer,
                    "reasoning": rec.chain.reasoning,
                }
            )
    return path


QA_PAIRS = ExportFormat(name="qa-pairs", export=export_pairs, help="question/answer/reasoning pairs as JSONL")
