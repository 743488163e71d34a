"""Measuring the quality gate on a labelled set of chains (the tests' set, or your own): precision and recall
per check. Used by the tests and ``benchmarks/chain_gate.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from robustgen.annotate.gate import CODES, gate_chain
from robustgen.annotate.validate import expected_types
from robustgen.degrade import registry
from robustgen.degrade.apply import plan_one
from robustgen.schemas import AppliedDegradation, ReasoningChain
from robustgen.schemas.recipe import ChainGate


def labelled(path: str | Path) -> list[dict[str, Any]]:
    """The labelled chains of a JSONL file: question, choices, degradations as [name, severity] pairs, the four
    parts, the answer, and ``expect`` (the codes the gate must find)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def records_of(pairs: list[list[Any]]) -> list[AppliedDegradation]:
    return [plan_one(registry.get(n), float(s), np.random.default_rng(0)) for n, s in pairs]


def findings_of(row: dict[str, Any], cfg: ChainGate | None = None) -> set[str]:
    degs = records_of(row["degradations"])
    chain = ReasoningChain(
        types=expected_types(degs),
        influence=row["influence"],
        reasoning=row["reasoning"],
        conclusion=row["conclusion"],
        answer=row["answer"],
    )
    return {f.code for f in gate_chain(chain, degs, row["question"], row["choices"], cfg)}


def scores(rows: list[dict[str, Any]], cfg: ChainGate | None = None) -> dict[str, dict[str, float]]:
    """Per check: true/false positives, false negatives, precision and recall over ``rows``."""
    out = {c: {"tp": 0, "fp": 0, "fn": 0} for c in CODES}
    for row in rows:
        found, want = findings_of(row, cfg), set(row["expect"])
        for c in CODES:
            if c in found and c in want:
                out[c]["tp"] += 1
            elif c in found:
                out[c]["fp"] += 1
            elif c in want:
                out[c]["fn"] += 1
    for s in out.values():
        s["precision"] = s["tp"] / (s["tp"] + s["fp"]) if s["tp"] + s["fp"] else 1.0
        s["recall"] = s["tp"] / (s["tp"] + s["fn"]) if s["tp"] + s["fn"] else 1.0
    return out
