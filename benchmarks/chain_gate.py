"""The chain quality gate, measured: precision and recall per check on the labelled chains in
tests/annotate/data/chains.jsonl (the set the checks were written against, and a batch of SmolLM2-135M
replies held out while they were written), and how many chains per second it checks.

    python benchmarks/chain_gate.py [--set FILE.jsonl]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from robustgen.annotate.gate import CODES
from robustgen.annotate.gate_eval import findings_of, labelled, scores

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "annotate" / "data" / "chains.jsonl"


def table(name: str, rows: list[dict]) -> None:
    rejected = sum(bool(findings_of(r)) for r in rows)
    bad = sum(bool(r["expect"]) for r in rows)
    print(f"\n{name}: {len(rows)} chains, {bad} labelled bad, {rejected} rejected by the gate")
    print(f"{'check':24s} {'tp':>4s} {'fp':>4s} {'fn':>4s} {'precision':>10s} {'recall':>7s}")
    for code, s in scores(rows).items():
        print(f"{code:24s} {s['tp']:4d} {s['fp']:4d} {s['fn']:4d} {s['precision']:10.2f} {s['recall']:7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", type=Path, default=DEFAULT)
    args = ap.parse_args()
    rows = labelled(args.set)
    held = [r for r in rows if r["origin"] == "smollm2-heldout"]
    table("written against", [r for r in rows if r["origin"] != "smollm2-heldout"])
    if held:
        table("held out (SmolLM2-135M, labelled before the gate saw them)", held)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 2.0:
        for r in rows:
            findings_of(r)
        n += len(rows)
    print(f"\n{n / (time.perf_counter() - t0):.0f} chains/s on one thread ({len(CODES)} checks each)")


if __name__ == "__main__":
    main()
