"""``synth --dry-run``: what a run would do and what the teacher estimates it would cost; nothing is sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from rich.table import Table

from robustgen.annotate.base import TeacherInput
from robustgen.pipelines.sources import read_source
from robustgen.schemas import Failure, Stage


def dry_run(cfg) -> Table:
    """Counts per stage and degrader, and the teacher's own estimate (tokens, cost) for the rows."""
    recipe = cfg.checked_recipe
    stages: Counter[str] = Counter()
    names: Counter[str] = Counter()
    counts = {"samples": 0, "bad": 0}

    def items() -> Iterator[TeacherInput]:
        for row in read_source(cfg.source, cfg.format, cfg.question, cfg.coco_root, cfg.split):
            if cfg.limit is not None and counts["samples"] + counts["bad"] >= cfg.limit:
                return
            if isinstance(row, Failure):
                counts["bad"] += 1
                continue
            counts["samples"] += 1
            plan = recipe.sample(seed=cfg.seed, sample_id=row.id)
            for d in plan.degradations:
                stages[d.stage.value] += 1
                names[d.name] += 1
            yield TeacherInput.for_row(row, plan.degradations, recipe.reasoning_length)

    estimate = cfg.teacher_obj.estimate(items())
    table = Table(title=f"dry run: {counts['samples']} samples ({counts['bad']} unreadable rows), nothing sent")
    table.add_column("what")
    table.add_column("count", justify="right")
    for stage in Stage:
        table.add_row(f"degradations in {stage.value}", str(stages[stage.value]))
    for name, n in names.most_common(8):
        table.add_row(f"  {name}", str(n))
    for what, value in estimate.items():
        table.add_row(what, value)
    return table
