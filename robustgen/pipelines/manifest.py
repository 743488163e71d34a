"""The end of a run: failures merged into failures.jsonl, counts, timings, the plan and the manifest."""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from robustgen.pipelines.config import SynthConfig, SynthSummary
from robustgen.pipelines.output import FAILURES, MANIFEST, WORK_DIR, Output
from robustgen.pipelines.plan import RunPlan
from robustgen.plugins import installed_plugins
from robustgen.schemas import Usage
from robustgen.schemas.redaction import redact


def finish(
    cfg: SynthConfig,
    out: Output,
    total: int,
    resumed: int,
    started: float,
    tokens: int,
    cost: float,
    written_ids: set[str],
    usage: Usage | None = None,
    rows_in_driver: int = 0,
    plan: RunPlan | None = None,
    rows_on_ray: int = 0,
) -> SynthSummary:
    """Merge failure shards into failures.jsonl (sorted by id) and write the manifest. ``written_ids``: the
    ids in data shards (known from the start-up scan plus this run's progress rows: no second full read)."""
    failures: dict[str, dict] = {}
    for shard in out.list(f"{WORK_DIR}/failures", ".jsonl"):
        for line in out.read_lines(shard):
            if line.strip():
                f = json.loads(line)
                failures[f["id"]] = f
    for sid in written_ids:
        failures.pop(sid, None)  # a later run wrote it after all
    ordered = [failures[k] for k in sorted(failures)]
    out.write_text(FAILURES, "".join(json.dumps(f, ensure_ascii=False, sort_keys=True) + "\n" for f in ordered))
    reasons = Counter(f"{f['stage']}: {f['reason'].split(':')[0][:60]}" for f in ordered)
    seconds = time.time() - started
    usage = usage or Usage()
    tokens += usage.total_tokens  # run-level requests (the endpoint probe) count like any other
    cost += usage.cost_usd
    summary = SynthSummary(
        total=total,
        written=len(written_ids),
        failed=len(ordered),
        resumed=resumed,
        seconds=round(seconds, 3),
        tokens=tokens,
        cost_usd=round(cost, 6),
        failure_reasons=dict(reasons.most_common()),
        rows_in_driver=rows_in_driver,
        rows_on_ray=rows_on_ray,
        executor=plan.executor if plan else "in-process",
        reason=plan.reason if plan else "",
    )
    info = manifest(cfg, summary, started, usage)
    if plan is not None:
        info["run"] = plan.model_dump(mode="json")
        if plan.ray_address:
            info["run"]["ray_address"] = _public(plan.ray_address)
    out.write_text(MANIFEST, json.dumps(info, indent=2, sort_keys=True))
    return summary


def versions() -> dict[str, str]:
    import albumentations
    import cv2
    import ray

    from robustgen import __version__

    return {
        "robustgen": __version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "albumentations": albumentations.__version__,
        "ray": ray.__version__,
        "python": platform.python_version(),
    }


def _public(text: str) -> str:
    """``text`` with credentials stripped from every URL in it and secrets redacted."""
    from robustgen.schemas.redaction import public_url

    return redact(re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+", lambda m: public_url(m.group()), text))


def _public_argv() -> str:
    """The command line with credentials stripped from every URL in it (``user:pass@``, ``?api-key=``), wherever
    the URL sits in an argument (``--base-url URL``, ``--teacher-set base_url=URL``)."""
    args = [_public(a) for a in sys.argv[1:]]
    return " ".join([Path(sys.argv[0]).name if sys.argv else "robustgen", *args])


def source_roots(cfg: SynthConfig) -> list[str]:
    """The folders the run read images from (a source file's folder, a source folder, ``--coco-root``): the only
    places a command that reads a record's ``source_image`` later (eval) reads from, besides the dataset."""
    roots = []
    for ref in (cfg.source, cfg.coco_root):
        if not ref or ref == "samples" or "://" in ref:
            continue
        p = Path(ref).resolve()
        roots.append(str(p if p.is_dir() else p.parent))
    return list(dict.fromkeys(roots))


def manifest(cfg: SynthConfig, summary: SynthSummary, started: float, usage: Usage) -> dict[str, Any]:
    return {
        "recipe": {**cfg.checked_recipe.to_dict(), "visibility": cfg.checked_recipe.visibility.model_dump(mode="json")},
        "seed": cfg.seed,
        "source": {"path": cfg.source, "format": cfg.format, "limit": cfg.limit, "roots": source_roots(cfg)},
        "teacher": cfg.teacher_obj.manifest_info(),
        "image_format": cfg.image_format,
        "versions": versions(),
        "plugins": installed_plugins(),
        "counts": {"total": summary.total, "written": summary.written, "failed": summary.failed},
        "timings": {
            "started": started,
            "seconds": summary.seconds,
            "samples_per_s": round((summary.total - summary.resumed) / max(summary.seconds, 1e-9), 3),
            "rows_in_driver": summary.rows_in_driver,
            "rows_on_ray": summary.rows_on_ray,
        },
        "usage": {"tokens": summary.tokens, "cost_usd": summary.cost_usd, "run_level": usage.model_dump()},
        "failure_reasons": summary.failure_reasons,
        "command": _public_argv(),
    }
