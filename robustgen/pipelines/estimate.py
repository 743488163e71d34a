"""``synth --dry-run``: what a run would do and, for the openai teacher, roughly what it would cost."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from robustgen.annotate import prompts
from robustgen.pipelines.sources import read_source
from robustgen.schemas import Stage

#: rough prompt tokens per image at the default 768 px side (OpenAI's high-detail tiling is 765)
TOKENS_PER_IMAGE = 765


def dry_run(cfg) -> Table:
    """Counts per stage and degrader, and an estimate of tokens and cost; no request is sent."""
    recipe = cfg.checked_recipe
    stages: Counter[str] = Counter()
    names: Counter[str] = Counter()
    samples = bad = 0
    prompt_tokens = completion_tokens = 0
    oc = cfg.openai
    for row in read_source(cfg.source, cfg.format, cfg.question, cfg.coco_root, cfg.split):
        if cfg.limit is not None and samples + bad >= cfg.limit:
            break
        if "error" in row:
            bad += 1
            continue
        samples += 1
        plan = recipe.sample(seed=cfg.seed, sample_id=row["id"])
        for d in plan.degradations:
            stages[d.stage.value] += 1
            names[d.name] += 1
        if cfg.teacher == "openai" and oc is not None:
            words = recipe.reasoning_length.bounds(plan.total_severity)
            text = prompts.SYSTEM + prompts.single_task(
                row["question"],
                row.get("choices"),
                row.get("answer") or "",
                plan.degradations,
                words,
                row.get("rationale"),
            )
            calls = 3 if oc.mode == "staged" else 1
            images = (3 if oc.mode == "staged" else 1) if oc.images else 0
            prompt_tokens += calls * len(text) // 4 + images * TOKENS_PER_IMAGE
            completion_tokens += int(words[1] * 1.4) + 60 * calls
    table = Table(title=f"dry run: {samples} samples ({bad} unreadable rows), nothing sent")
    table.add_column("what")
    table.add_column("count", justify="right")
    for stage in Stage:
        table.add_row(f"degradations in {stage.value}", str(stages[stage.value]))
    for name, n in names.most_common(8):
        table.add_row(f"  {name}", str(n))
    if cfg.teacher == "openai" and oc is not None:
        cost = (prompt_tokens * oc.price_in + completion_tokens * oc.price_out) / 1e6
        table.add_row("estimated prompt tokens", f"{prompt_tokens:,}")
        table.add_row("estimated completion tokens", f"{completion_tokens:,}")
        table.add_row("estimated cost (USD, before re-asks)", f"{cost:.4f}" if oc.price_in or oc.price_out else "n/a")
    return table
