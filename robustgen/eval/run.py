"""``robustgen eval``: ask an OpenAI-compatible VLM every question on the clean image and at every degradation
level, through the teacher's transport (retries, rate limits, cost cap, response cache), writing one
predictions file per level; a killed run resumes where it stopped."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from robustgen.annotate.endpoint import Endpoint, EndpointConfig
from robustgen.annotate.transport import BudgetExhausted, TransportError
from robustgen.errors import RobustgenError
from robustgen.eval.extract import LETTERS, extract_choice, judge_open
from robustgen.images import data_url
from robustgen.pipelines.corrupt import DEFAULT_LEVELS, level_names, recipe_planner
from robustgen.pipelines.folders import check_claim, claim
from robustgen.pipelines.output import Output
from robustgen.pipelines.process import load_row_image
from robustgen.pipelines.sources import read_source
from robustgen.schemas import Failure, SourceRow, Usage
from robustgen.schemas.paths import write_file
from robustgen.schemas.redaction import public_url

PROMPT_VERSION = "eval-1"
CLEAN = "clean"


class EvalConfig(EndpointConfig):
    """One evaluation run: the input, the model, the levels and how they are drawn."""

    input: str
    out: str
    model: str
    format: str = "auto"
    levels: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    recipe: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    images: bool = True
    max_image_side: int = Field(default=768, ge=32)
    max_tokens: int = Field(default=64, ge=1)
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "prompt"  # plain questions
    source_roots: list[str] = Field(
        default_factory=list, description="folders a dataset's records may name source images in (besides its own)"
    )
    extract_model: str | None = Field(
        default=None, description="a model on the same endpoint that reads the option out of a free-form reply"
    )

    def fingerprint(self) -> dict[str, Any]:
        """What changes the predictions (not speed, spending or where the output goes)."""
        from robustgen.degrade.recipes import Recipe

        return {
            "input": _digest(self.input),
            "format": self.format,
            "model": self.model,
            "endpoint": public_url(self.base_url),
            "levels": self.levels,
            "recipe": Recipe.from_dict(self.recipe).to_dict(),
            "seed": self.seed,
            "limit": self.limit,
            "images": self.images,
            "max_image_side": self.max_image_side,
            "prompt_version": PROMPT_VERSION,
            "extract_model": self.extract_model,
            **({"max_tokens": self.max_tokens} if self.max_tokens != 64 else {}),  # 64: runs from before it was here
        }


class EvalSummary(BaseModel):
    items: int
    asked: int
    resumed: int
    failed: int
    tokens: int
    cost_usd: float


def _digest(source: str) -> str:
    path = Path(source)
    if path.is_file():
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    return source


def prompt_for(row: SourceRow) -> str:
    """VLMEvalKit's wording: options as letters, and the letter asked for; open questions in a short phrase."""
    if row.choices:
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(row.choices))
        return f"{row.question}\nOptions:\n{options}\nAnswer with the option's letter from the given choices directly."
    return f"{row.question}\nAnswer the question using a single word or phrase."


def eval_rows(source: str, fmt: str = "auto", source_roots: list[str] = ()) -> Iterator[SourceRow | Failure]:
    """The items of an eval input: any synth source (VLMEvalKit TSV, JSONL, CSV, parquet, samples, ...) or a
    robustgen dataset folder, whose records are asked on their clean images: kept ones (``clean/``), samples, or
    source images inside the manifest's source folders or ``source_roots`` (``Dataset.clean_source``)."""
    path = Path(source)
    if path.is_dir() and (path / "manifest.json").is_file():
        from robustgen.pipelines.dataset import Dataset

        ds = Dataset.open(path)
        for rec in ds.iter_records():
            if rec.source_image.endswith("(embedded)") and rec.clean_image is None:
                yield Failure(
                    id=rec.id,
                    source=source,
                    stage="read",
                    reason="the clean image was embedded in the "
                    "source and is not kept in the dataset; evaluate on the source instead",
                )
                continue
            if rec.extra_images:
                yield Failure(
                    id=rec.id,
                    source=source,
                    stage="read",
                    reason="a two-image question (which version is more degraded) cannot be asked of one clean "
                    "image; evaluate a dataset of one-image questions",
                )
                continue
            try:
                image = ds.clean_source(rec, [Path(r) for r in source_roots])
            except ValueError as exc:
                yield Failure(id=rec.id, source=source, stage="read", reason=str(exc))
                continue
            yield SourceRow(
                id=rec.id,
                source=source,
                image=image,
                question=rec.question,
                answer=rec.answer,
                choices=rec.choices,
            )
        return
    yield from read_source(source, fmt)


def _row_id(row: SourceRow, source: str) -> str:
    """The id predictions are joined on: a VLMEvalKit TSV's own ``index``, else the row id."""
    stem = Path(source).stem
    if source.lower().endswith(".tsv") and row.id.startswith(f"{stem}-"):
        return row.id[len(stem) + 1 :]
    return row.id


class Predictions:
    """``DIR/predictions/LEVEL.jsonl``, appended line by line; a line torn by a kill is dropped on resume."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.dir = root / "predictions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, set[str]] = {}
        self.files = {}
        for name in names:
            path = self.dir / f"{name}.jsonl"
            lines = path.read_bytes().splitlines() if path.exists() else []
            good = []
            for raw in lines:
                try:
                    good.append(json.loads(raw))
                except ValueError:
                    continue
            if len(good) != len(lines):
                path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in good), encoding="utf-8")
            self.done[name] = {x["id"] for x in good if isinstance(x, dict) and "id" in x}
            self.files[name] = path.open("a", encoding="utf-8")

    def add(self, level: str, line: dict[str, Any]) -> None:
        f = self.files[level]
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
        f.flush()
        self.done[level].add(line["id"])

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class Asker:
    """Questions to the VLM through the shared endpoint client (budget, deadline, redaction), cached in the run."""

    def __init__(self, cfg: EvalConfig, cache_dir: Path) -> None:
        self.cfg = cfg
        self.endpoint = Endpoint(cfg, model=cfg.model, who="eval", cache_dir=str(cache_dir), seed=cfg.seed)
        self.endpoint.preflight()

    async def extract(self, row: SourceRow, raw: str, usage: Usage) -> int | None:
        """The option a free-form reply chooses, read by the extraction model (VLMEvalKit's judge step)."""
        assert row.choices and self.cfg.extract_model
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(row.choices))
        text = (
            f"Question: {row.question}\nOptions:\n{options}\nAn answer given: {raw}\n\nWhich option does the answer "
            f"choose? Reply with its single letter, or Z if it chooses none or several."
        )
        reply = await self.ask(text, None, usage, model=self.cfg.extract_model)
        return extract_choice(reply, row.choices)

    async def ask(self, text: str, image: np.ndarray | None, usage: Usage, model: str | None = None) -> str:
        pair = None
        if image is not None and self.cfg.images:
            pair = await asyncio.to_thread(data_url, image, self.cfg.max_image_side)
        reply = await self.endpoint.ask_text(
            text, usage, images=pair, model=model, max_tokens=self.cfg.max_tokens, tag=PROMPT_VERSION
        )
        return reply.text


def _levels(cfg: EvalConfig) -> list[str]:
    return [CLEAN, *(str(n) for n in level_names(cfg.levels))]


def run_eval(cfg: EvalConfig, on_item: Callable[[], None] | None = None) -> EvalSummary:
    """Ask every pending (item, level) once; ``RobustgenError`` for usage problems."""
    from robustgen.degrade.recipes import Recipe

    out = Path(cfg.out)
    recipe = Recipe.from_dict(cfg.recipe)
    names = _levels(cfg)
    if cfg.input != "samples" and not Path(cfg.input).exists():  # what is wrong here is said before the endpoint
        raise RobustgenError(f"{cfg.input}: no such file or folder")
    if cfg.input != "samples" and not (Path(cfg.input).is_dir() or Path(cfg.input).is_file()):
        raise RobustgenError(f"{cfg.input}: not a regular file or a folder")  # a FIFO would hang the run
    check_claim(out, "eval")  # never into a dataset (its failures.jsonl), a report folder or files of the user's
    asker = Asker(cfg, out / ".work" / "vlm-cache")  # a dead endpoint or a refused key: exit 2 before any file
    holder = Output(str(out))
    with holder.exclusive():
        claim(out, "eval")
        run_file = out / ".work" / "run.json"
        fp = cfg.fingerprint()
        if run_file.exists():
            old = json.loads(run_file.read_text(encoding="utf-8"))
            diff = sorted(k for k in set(fp) | set(old) if fp.get(k) != old.get(k))
            if diff:
                raise RobustgenError(
                    f"{out}: holds an eval with different settings ({', '.join(diff)}); use another --out"
                )
        run_file.parent.mkdir(parents=True, exist_ok=True)
        run_file.write_text(json.dumps(fp, indent=2, sort_keys=True), encoding="utf-8")
        # where the items came from (not part of the fingerprint: a moved input still resumes): `robustgen view`
        # reads each item's clean image back from here, through the same readers and trust rules
        source = {
            "input": cfg.input if cfg.input == "samples" else str(Path(cfg.input).resolve()),
            "format": cfg.format,
            "source_roots": [str(Path(r).resolve()) for r in cfg.source_roots],
        }
        write_file(out, ".work/input.json", (json.dumps(source, indent=2) + "\n").encode("utf-8"))
        preds = Predictions(out, names)
        try:
            return asyncio.run(_run(cfg, recipe, names, asker, preds, on_item))
        finally:
            preds.close()


async def _run(cfg, recipe, names, asker: Asker, preds: Predictions, on_item) -> EvalSummary:
    """Items flow through a window of ``4 x concurrency``: the next item's images are prepared while others wait
    for replies, so requests in flight stay at the concurrency, and no more than the window's images are held."""
    planner = recipe_planner(recipe, cfg.seed, cfg.levels)
    usage = Usage()
    failures: list[dict[str, Any]] = []
    counts = {"items": 0, "asked": 0, "resumed": 0}
    window = asyncio.Semaphore(max(8, 4 * cfg.concurrency))
    running: set[asyncio.Task] = set()

    async def item(row: SourceRow | Failure) -> None:
        try:
            if isinstance(row, Failure):
                failures.append({"id": row.id, "level": "*", "reason": row.reason})
                return
            rid = _row_id(row, cfg.input)
            pending = [n for n in names if rid not in preds.done[n]]
            if not pending:
                counts["resumed"] += 1
                return
            try:
                clean = await asyncio.to_thread(load_row_image, row)
                wants_levels = any(n != CLEAN for n in pending)
                levels = await asyncio.to_thread(planner, clean, rid) if wants_levels else []
            except (RobustgenError, ValueError) as exc:
                failures.append({"id": rid, "level": "*", "reason": str(exc)})
                return
            images = {CLEAN: (clean, [])}
            for name, (img, plan) in zip(names[1:], levels, strict=False):
                images[name] = (img, [d.model_dump(mode="json") for d in plan.degradations])
            jobs = [_one(cfg, asker, preds, row, rid, n, *images[n], usage, failures) for n in pending]
            asked = sum(await asyncio.gather(*jobs))  # awaited first: `counts[k] += await ...` loses updates
            counts["asked"] += asked
        finally:
            window.release()
            if on_item:
                on_item()

    for n, row in enumerate(eval_rows(cfg.input, cfg.format, cfg.source_roots)):
        if cfg.limit is not None and n >= cfg.limit:
            break
        counts["items"] += 1
        await window.acquire()
        task = asyncio.create_task(item(row))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
    (Path(cfg.out) / "failures.jsonl").write_text(
        "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures), encoding="utf-8"
    )
    return EvalSummary(
        items=counts["items"],
        asked=counts["asked"],
        resumed=counts["resumed"],
        failed=len(failures),
        tokens=usage.total_tokens,
        cost_usd=round(usage.cost_usd, 6),
    )


def _unaskable(row: SourceRow) -> str | None:
    """Why a multiple-choice row cannot be asked with lettered options, or None."""
    if not row.choices:
        return None
    if len(row.choices) > len(LETTERS):
        return f"{len(row.choices)} options: at most {len(LETTERS)} can be lettered A-Z"
    answer = (row.answer or "").strip()
    if answer.isdigit() and int(answer) >= len(row.choices):
        return f"the answer index {answer} is outside the {len(row.choices)} options"
    return None


async def _one(
    cfg,
    asker: Asker,
    preds: Predictions,
    row: SourceRow,
    rid: str,
    level: str,
    image,
    degradations,
    usage: Usage,
    failures: list,
) -> int:
    if problem := _unaskable(row):  # a hostile row is that item's failure, never an IndexError
        failures.append({"id": rid, "level": level, "reason": problem})
        return 0
    step = "request"
    try:
        raw = await asker.ask(prompt_for(row), image, usage)
        idx = extract_choice(raw, row.choices) if row.choices else None
        if row.choices and idx is None and cfg.extract_model:
            step = "extraction"
            idx = await asker.extract(row, raw, usage)
    except BudgetExhausted as exc:
        failures.append({"id": rid, "level": level, "reason": f"budget: {exc}"})
        return 0
    except TransportError as exc:
        failures.append({"id": rid, "level": level, "reason": f"{step} failed: {exc}"})
        return 0
    if row.choices:
        extracted = LETTERS[idx] if idx is not None else None
        correct = idx is not None and row.answer is not None and str(idx) == row.answer.strip()
        answer = LETTERS[int(row.answer)] if row.answer and row.answer.strip().isdigit() else row.answer
    else:
        extracted, answer = raw.strip(), row.answer
        correct = row.answer is not None and judge_open(raw, row.answer)
    preds.add(
        level,
        {
            "id": rid,
            "level": level,
            "question": row.question,
            "choices": row.choices,
            "answer": answer,
            "prediction": raw,
            "extracted": extracted,
            "correct": bool(correct),
            "degradations": degradations,
        },
    )
    return 1
