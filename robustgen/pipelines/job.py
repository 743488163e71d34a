"""``robustgen synth``: sources -> plan -> degrade -> annotate -> validate -> write, on Ray Data."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robustgen.annotate.openai_teacher import OpenAITeacher, OpenAITeacherConfig
from robustgen.annotate.template import TemplateTeacher
from robustgen.degrade.recipes import Recipe
from robustgen.errors import RobustgenError
from robustgen.pipelines import process
from robustgen.pipelines.output import DATA_DIR, FAILURES, MANIFEST, RUN_FILE, WORK_DIR, Output
from robustgen.pipelines.sources import read_source

#: rows per input chunk: one Ray task reads, degrades (and for the template teacher annotates) a chunk
CHUNK_ROWS = 64
SPEED_SETTINGS = {"timeout_s", "max_retries", "backoff_s", "rpm", "tpm", "concurrency", "max_cost", "cache_dir"}


class SynthConfig(BaseModel):
    """Everything one synth run depends on."""

    model_config = ConfigDict(extra="forbid")

    out: str
    source: str = "samples"
    format: str = "auto"
    recipe: dict[str, Any] = Field(default_factory=dict, description="recipe as a dict (validated by Recipe)")
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    teacher: Literal["template", "openai"] = "template"
    openai: OpenAITeacherConfig | None = None
    workers: int = Field(default=2, ge=1)
    ray_address: str | None = None
    image_format: Literal["jpg", "png"] = "jpg"
    question: str | None = None
    coco_root: str | None = None
    split: str | None = None
    batch_size: int = Field(default=16, ge=1)
    overwrite: bool = False
    retry_failed: bool = Field(default=False, description="on resume, process earlier failures again")

    @cached_property
    def checked_recipe(self) -> Recipe:
        """The recipe, validated against the registry once (``RecipeError`` when it does not)."""
        return Recipe.from_dict(self.recipe)

    def fingerprint(self) -> dict[str, Any]:
        """Settings that change the dataset (not speed, workers or paths of caches)."""
        src = self.source if self.source == "samples" else str(Path(self.source).resolve())
        teacher: dict[str, Any] = {"kind": self.teacher}
        if self.teacher == "openai" and self.openai is not None:
            teacher.update({k: v for k, v in self.openai.model_dump().items() if k not in SPEED_SETTINGS})
        return {
            "source": src,
            "format": self.format,
            "recipe": self.checked_recipe.to_dict(),
            "seed": self.seed,
            "limit": self.limit,
            "teacher": teacher,
            "image_format": self.image_format,
            "question": self.question,
            "coco_root": self.coco_root,
            "split": self.split,
        }


class SynthSummary(BaseModel):
    total: int
    written: int
    failed: int
    resumed: int = Field(description="samples already done by an earlier run and skipped")
    seconds: float
    tokens: int = 0
    cost_usd: float = 0.0
    failure_reasons: dict[str, int] = Field(default_factory=dict)


# ---- Ray stage functions (module level: they are shipped to workers) -------------------------------


def _unexpected(row: dict[str, Any], exc: Exception) -> dict[str, Any]:
    return {"failure": process.failure(row, "internal", f"{type(exc).__name__}: {exc}")}


_CACHE: dict[str, Any] = {}


def _cached(kind: str, key: Any, make: Callable[[], Any]) -> Any:
    """Per-process memo for objects every batch of a run shares (recipe, output folder)."""
    k = f"{kind}:{json.dumps(key, sort_keys=True)}"
    if k not in _CACHE:
        _CACHE[k] = make()
    return _CACHE[k]


def degrade_batch(batch: dict[str, np.ndarray], *, recipe: dict, seed: int, out_uri: str, image_format: str):
    import cv2

    cv2.setNumThreads(1)  # one Ray CPU per task: OpenCV's own thread pool would oversubscribe it
    rec = _cached("recipe", recipe, lambda: Recipe.from_dict(recipe))
    out = _cached("out", out_uri, lambda: Output(out_uri))
    payloads = []
    for line in batch["text"]:
        row = json.loads(line)
        try:
            res = process.degrade_row(row, rec, seed, out, image_format)
        except Exception as exc:  # a bug must cost one row, not the run
            res = _unexpected(row, exc)
        payloads.append(json.dumps({"res": res, "row": row}))
    return {"payload": np.array(payloads, dtype=object)}


def _make_teacher(kind: str, openai_cfg: dict | None):
    if kind == "openai":
        return OpenAITeacher(OpenAITeacherConfig(**(openai_cfg or {})))
    return TemplateTeacher()


def _split(batch) -> tuple[list[dict], list[tuple[dict, dict]]]:
    decoded = [json.loads(p) for p in batch["payload"]]
    return decoded, [(d["res"], d["row"]) for d in decoded if "failure" not in d["res"]]


def _finish_batch(out: Output, decoded: list[dict], annotated: list[dict]) -> dict[str, np.ndarray]:
    it = iter(annotated)
    results = [d["res"] if "failure" in d["res"] else next(it) for d in decoded]
    progress = process.write_batch(out, results)
    return {k: np.array([p[k] for p in progress], dtype=object) for k in ("id", "ok", "tokens", "cost")}


def annotate_batch(batch, *, recipe: dict, out_uri: str):
    """Template teacher: a plain task (fused with the degrade task by Ray Data)."""
    band = _cached("recipe", recipe, lambda: Recipe.from_dict(recipe)).reasoning_length
    out = _cached("out", out_uri, lambda: Output(out_uri))
    decoded, items = _split(batch)
    annotated = asyncio.run(process.annotate_all(TemplateTeacher(), items, band, out, False)) if items else []
    return _finish_batch(out, decoded, annotated)


class AnnotateActor:
    """OpenAI-compatible teacher: one client, limiter and budget per actor.

    ``__call__`` is an async generator, so Ray Data runs several batches at once on the actor's single
    event loop; the teacher's own semaphore bounds the requests in flight across all of them."""

    def __init__(self, recipe: dict, out_uri: str, openai_cfg: dict) -> None:
        self.band = Recipe.from_dict(recipe).reasoning_length
        self.out = Output(out_uri)
        self.teacher = _make_teacher("openai", openai_cfg)
        self.images = bool(openai_cfg.get("images", True))

    async def __call__(self, batch):
        decoded, items = _split(batch)
        annotated = await process.annotate_all(self.teacher, items, self.band, self.out, self.images) if items else []
        yield _finish_batch(self.out, decoded, annotated)


# ---- the driver -------------------------------------------------------------------------------------


def _ids_in(out: Output, rel: str) -> set[str]:
    ids: set[str] = set()
    for shard in out.list(rel, ".jsonl"):
        for line in out.read_text(shard).splitlines():
            if line.strip():
                try:
                    ids.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError):
                    continue
    return ids


def prepare_output(cfg: SynthConfig, out: Output) -> None:
    """Start, resume, or refuse: a folder holding a run with other settings is never mixed into."""
    fp = cfg.fingerprint()
    if cfg.overwrite:
        out.clear()
    elif not out.is_empty():
        if not out.exists(RUN_FILE):
            raise RobustgenError(
                f"{cfg.out}: folder is not empty and holds no robustgen run; use --overwrite "
                "to replace it or choose another --out"
            )
        old = json.loads(out.read_text(RUN_FILE))
        diff = sorted(k for k in set(fp) | set(old) if fp.get(k) != old.get(k))
        if diff:
            raise RobustgenError(
                f"{cfg.out}: holds a run with different settings ({', '.join(diff)}); use "
                "--overwrite to start over or choose another --out"
            )
    out.mkdirs(WORK_DIR)
    out.write_text(RUN_FILE, json.dumps(fp, indent=2, sort_keys=True))
    out.clean_temporaries()


def stream_inputs(
    cfg: SynthConfig, out: Output, done: set[str], retry: set[str] = frozenset()
) -> tuple[list[str], int, list[dict]]:
    """Write pending rows to input chunks for Ray; returns (chunk paths, total rows, read failures)."""
    out.delete(f"{WORK_DIR}/inputs")
    chunks, buf, total, read_failures = [], [], 0, []
    seen: dict[str, str] = {}
    rows = read_source(cfg.source, cfg.format, cfg.question, cfg.coco_root, cfg.split)

    def flush() -> None:
        if buf:
            rel = f"{WORK_DIR}/inputs/chunk-{len(chunks):05d}.jsonl"
            out.write_text(rel, "".join(buf))
            chunks.append(rel)
            buf.clear()

    for row in rows:
        if cfg.limit is not None and total >= cfg.limit:
            break
        total += 1
        if row["id"] in seen:
            row = {
                "id": f"{row['id']}@{row['source']}",
                "source": row["source"],
                "stage": "read",
                "error": f"duplicate id {row['id']!r} (first at {seen[row['id']]})",
            }
        seen.setdefault(row["id"], row["source"])
        if "error" in row:
            read_failures.append({"id": row["id"], "source": row["source"], "stage": "read", "reason": row["error"]})
            continue
        if row["id"] in done:
            continue
        if row["id"] in retry:
            row["retry"] = True  # its cached teacher replies led to the failure: ask afresh
        buf.append(json.dumps(row) + "\n")
        if len(buf) >= CHUNK_ROWS:
            flush()
    flush()
    lines = "".join(json.dumps(f, sort_keys=True) + "\n" for f in read_failures)
    out.write_text(f"{WORK_DIR}/failures/read.jsonl", lines)
    return chunks, total, read_failures


def _init_ray(cfg: SynthConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    env = {}
    if cfg.teacher == "openai" and cfg.openai is not None and os.environ.get(cfg.openai.api_key_env):
        env[cfg.openai.api_key_env] = os.environ[cfg.openai.api_key_env]
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    logging.getLogger("ray").setLevel(logging.ERROR)
    if cfg.ray_address:
        try:
            ray.init(address=cfg.ray_address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RobustgenError(
                f"--ray-address {cfg.ray_address}: cannot join the Ray cluster ({first}); a cluster with token "
                "authentication needs RAY_AUTH_MODE=token and its token (see `ray get-auth-token`)"
            ) from None
    else:
        ray.init(num_cpus=cfg.workers, **kwargs)


def _chunk_lines(out_uri: str, rel: str) -> list[str]:
    out = _cached("out", out_uri, lambda: Output(out_uri))
    return [line for line in out.read_text(rel).splitlines() if line.strip()]


def degrade_chunks(batch, *, recipe: dict, seed: int, out_uri: str, image_format: str, batch_size: int):
    """Read whole input chunks and degrade them inside one task (no per-row hop through Ray)."""
    payloads: list[str] = []
    for rel in batch["chunk"]:
        lines = _chunk_lines(out_uri, rel)
        for i in range(0, len(lines), batch_size):
            sub = {"text": np.array(lines[i : i + batch_size], dtype=object)}
            res = degrade_batch(sub, recipe=recipe, seed=seed, out_uri=out_uri, image_format=image_format)
            payloads += list(res["payload"])
    return {"payload": np.array(payloads, dtype=object)}


def template_chunks(batch, *, recipe: dict, seed: int, out_uri: str, image_format: str, batch_size: int):
    """Template teacher: read, degrade, annotate and write whole chunks in one task, a shard per batch."""
    progress: dict[str, list] = {"id": [], "ok": [], "tokens": [], "cost": []}
    for rel in batch["chunk"]:
        lines = _chunk_lines(out_uri, rel)
        for i in range(0, len(lines), batch_size):
            sub = {"text": np.array(lines[i : i + batch_size], dtype=object)}
            res = degrade_batch(sub, recipe=recipe, seed=seed, out_uri=out_uri, image_format=image_format)
            done = annotate_batch(res, recipe=recipe, out_uri=out_uri)
            for k in progress:
                progress[k] += list(done[k])
    return {k: np.array(v, dtype=object) for k, v in progress.items()}


def run_pipeline(cfg: SynthConfig, chunks: list[str], on_row: Callable[[dict], None]) -> None:
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    recipe = cfg.checked_recipe.to_dict()
    out_uri = Output(cfg.out).uri
    kwargs = {
        "recipe": recipe,
        "seed": cfg.seed,
        "out_uri": out_uri,
        "image_format": cfg.image_format,
        "batch_size": cfg.batch_size,
    }
    # one item per input chunk; a task takes one chunk, so Ray sees few, coarse tasks
    ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=len(chunks))
    if cfg.teacher == "openai":
        oc = (cfg.openai or OpenAITeacherConfig()).model_dump()
        if oc.get("cache_dir") is None:
            oc["cache_dir"] = Output(cfg.out).path(f"{WORK_DIR}/teacher-cache")
        ds = ds.map_batches(degrade_chunks, batch_size=1, fn_kwargs=kwargs)
        ds = ds.map_batches(
            AnnotateActor,
            batch_size=max(cfg.batch_size, oc["concurrency"]),
            fn_constructor_kwargs={"recipe": recipe, "out_uri": out_uri, "openai_cfg": oc},
            # several batches in flight on the actor's event loop; requests are bounded by the teacher
            compute=ray.data.ActorPoolStrategy(
                size=1, max_concurrent_calls_per_actor=8, max_tasks_in_flight_per_actor=8
            ),
            num_cpus=0.5,
        )
    else:
        ds = ds.map_batches(template_chunks, batch_size=1, fn_kwargs=kwargs)
    for row in ds.iter_rows():
        on_row(row)


def finish(
    cfg: SynthConfig,
    out: Output,
    total: int,
    resumed: int,
    started: float,
    tokens: int,
    cost: float,
    written_ids: set[str],
) -> SynthSummary:
    """Merge failure shards into failures.jsonl (sorted by id) and write the manifest. ``written_ids``: the
    ids in data shards (known from the start-up scan plus this run's progress rows: no second full read)."""
    failures: dict[str, dict] = {}
    for shard in out.list(f"{WORK_DIR}/failures", ".jsonl"):
        for line in out.read_text(shard).splitlines():
            if line.strip():
                f = json.loads(line)
                failures[f["id"]] = f
    for sid in written_ids:
        failures.pop(sid, None)  # a later run wrote it after all
    ordered = [failures[k] for k in sorted(failures)]
    out.write_text(FAILURES, "".join(json.dumps(f, ensure_ascii=False, sort_keys=True) + "\n" for f in ordered))
    reasons = Counter(f"{f['stage']}: {f['reason'].split(':')[0][:60]}" for f in ordered)
    seconds = time.time() - started
    summary = SynthSummary(
        total=total,
        written=len(written_ids),
        failed=len(ordered),
        resumed=resumed,
        seconds=round(seconds, 3),
        tokens=tokens,
        cost_usd=round(cost, 6),
        failure_reasons=dict(reasons.most_common()),
    )
    out.write_text(MANIFEST, json.dumps(manifest(cfg, summary, started), indent=2, sort_keys=True))
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


def manifest(cfg: SynthConfig, summary: SynthSummary, started: float) -> dict[str, Any]:
    teacher: dict[str, Any] = {"kind": cfg.teacher}
    if cfg.teacher == "openai" and cfg.openai is not None:
        from robustgen.annotate.openai_teacher import public_url

        oc = cfg.openai.model_dump(exclude={"cache_dir"})
        oc["base_url"] = public_url(oc["base_url"])  # never credentials; the key itself is never in cfg
        teacher.update(oc)
    return {
        "recipe": cfg.checked_recipe.to_dict(),
        "seed": cfg.seed,
        "source": {"path": cfg.source, "format": cfg.format, "limit": cfg.limit},
        "teacher": teacher,
        "image_format": cfg.image_format,
        "versions": versions(),
        "counts": {"total": summary.total, "written": summary.written, "failed": summary.failed},
        "timings": {
            "started": started,
            "seconds": summary.seconds,
            "samples_per_s": round((summary.total - summary.resumed) / max(summary.seconds, 1e-9), 3),
        },
        "usage": {"tokens": summary.tokens, "cost_usd": summary.cost_usd},
        "failure_reasons": summary.failure_reasons,
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)),
    }


def synth(
    cfg: SynthConfig, on_progress: Callable[[dict], None] | None = None, on_start: Callable[[int], None] | None = None
) -> SynthSummary:
    """Run (or resume) a synth job. ``RobustgenError`` for usage problems; bad rows become failures."""
    started = time.time()
    cfg.checked_recipe  # noqa: B018 - fail fast on a bad recipe
    if cfg.teacher == "template" and cfg.source != "samples":
        from robustgen.pipelines.sources import detect_format

        fmt = (
            cfg.format
            if cfg.format != "auto"
            else (detect_format(Path(cfg.source)) if Path(cfg.source).exists() else "auto")
        )
        if fmt == "folder":
            raise RobustgenError(
                f"{cfg.source}: a folder of images has no ground-truth answers and the template "
                "teacher never invents them; use --teacher openai (with --question) for folders"
            )
    out = Output(cfg.out)
    prepare_output(cfg, out)
    retry: set[str] = set()
    if cfg.retry_failed:
        retry = _ids_in(out, f"{WORK_DIR}/failures") - _ids_in_read(out)
        for shard in out.list(f"{WORK_DIR}/failures", ".jsonl"):
            out.delete(shard)
    # finished earlier: written, or failed after reading (read failures are simply read again)
    written = _ids_in(out, DATA_DIR)
    done = written | (_ids_in(out, f"{WORK_DIR}/failures") - _ids_in_read(out))
    chunks, total, read_failures = stream_inputs(cfg, out, done, retry)
    pending = total - len(read_failures) - len(done)
    if on_start:
        on_start(max(0, pending))
    tokens, cost = 0, 0.0
    if chunks:
        _init_ray(cfg)

        def on_row(row: dict) -> None:
            nonlocal tokens, cost
            tokens += int(row["tokens"])
            cost += float(row["cost"])
            if row["ok"]:
                written.add(row["id"])
            if on_progress:
                on_progress(row)

        run_pipeline(cfg, chunks, on_row)
    return finish(cfg, out, total, len(done), started, tokens, cost, written)


def _ids_in_read(out: Output) -> set[str]:
    rel = f"{WORK_DIR}/failures/read.jsonl"
    if not out.exists(rel):
        return set()
    return {json.loads(line)["id"] for line in out.read_text(rel).splitlines() if line.strip()}
