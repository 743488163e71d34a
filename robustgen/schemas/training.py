"""The training row every consumer of a dataset builds: the TRL export and ``robustgen.train`` alike."""

from __future__ import annotations

import json
from typing import Any

from robustgen.schemas.chain import ROBUST_R1_INSTRUCTION, question_text
from robustgen.schemas.record import DatasetRecord


def training_prompt(rec: DatasetRecord) -> list[dict[str, Any]]:
    """The conversational prompt: one image placeholder per image of the record, then the question (options
    listed) and the Robust-R1 instruction."""
    text = f"{question_text(rec.question, rec.choices)}\n{ROBUST_R1_INSTRUCTION}"
    images = [{"type": "image", "text": None} for _ in rec.images]
    return [{"role": "user", "content": [*images, {"type": "text", "text": text}]}]


def training_row(rec: DatasetRecord) -> dict[str, Any]:
    """Every column but ``images``: ``id``, ``prompt``, the reward columns ``solution`` (the reference chain),
    ``answer``, ``choices`` (the options in order, or None: the accuracy reward then accepts an index, a
    letter or the option text) and ``degradations`` (the exact records as JSON)."""
    return {
        "id": rec.id,
        "prompt": training_prompt(rec),
        "solution": rec.response,
        "answer": rec.chain.answer,
        "choices": list(rec.choices) if rec.choices else None,
        "degradations": json.dumps([d.model_dump(mode="json") for d in rec.degradations]),
    }


#: the Hugging Face ``datasets`` features of a training row (the TRL parquet export declares them)
TRAINING_FEATURES: dict[str, Any] = {
    "id": {"dtype": "string", "_type": "Value"},
    "prompt": [
        {
            "role": {"dtype": "string", "_type": "Value"},
            "content": [{"type": {"dtype": "string", "_type": "Value"}, "text": {"dtype": "string", "_type": "Value"}}],
        }
    ],
    "images": [{"_type": "Image"}],
    "solution": {"dtype": "string", "_type": "Value"},
    "answer": {"dtype": "string", "_type": "Value"},
    "choices": [{"dtype": "string", "_type": "Value"}],
    "degradations": {"dtype": "string", "_type": "Value"},
}
