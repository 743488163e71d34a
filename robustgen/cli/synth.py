"""``synth``: build a dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.markup import escape

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.cli.common import (
    EXIT_SOME_FAILED,
    FormatOpt,
    LimitOpt,
    RecipeOpt,
    SeedOpt,
    app,
    complain,
    err,
    out,
    settings_error,
    user_errors,
)
from robustgen.degrade.recipes import Recipe
from robustgen.errors import RobustgenError, first_line
from robustgen.pipelines.plan import SMALL_RUN_ROWS

PANEL = "Build a dataset"


@app.command(rich_help_panel=PANEL)
def synth(
    out_dir: Annotated[str, typer.Option("--out", help="output folder (or file:// / other pyarrow URI)")],
    source: Annotated[str, typer.Option(help="'samples' (built in) or a file/folder")] = "samples",
    fmt: FormatOpt = "auto",
    recipe: RecipeOpt = None,
    seed: SeedOpt = 0,
    limit: LimitOpt = None,
    teacher: Annotated[
        str, typer.Option(help="template (offline), openai, or a plugin's name (robustgen teachers)")
    ] = "template",
    workers: Annotated[int, typer.Option(min=1, help="worker CPUs (1: the run stays in this process)")] = 2,
    ray_address: Annotated[str | None, typer.Option(help="join an existing Ray cluster")] = None,
    executor: Annotated[
        Literal["auto", "in-process", "ray"],
        typer.Option(
            help=f"auto (in this process for --workers 1 or up to {SMALL_RUN_ROWS} rows, else Ray Data), "
            "in-process, or ray"
        ),
    ] = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count and estimate; send nothing")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace what --out holds")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="on resume, try earlier failures again")] = False,
    image_format: Annotated[Literal["jpg", "png"], typer.Option(help="jpg (q95) or png (lossless)")] = "jpg",
    question: Annotated[str | None, typer.Option(help="folder sources: the question to ask")] = None,
    coco_root: Annotated[str | None, typer.Option(help="aokvqa: folder holding <split>2017/")] = None,
    split: Annotated[str | None, typer.Option(help="aokvqa: train|val|test (default: from the file name)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="rows per Ray batch (does not change the output)")] = 16,
    teacher_config: Annotated[Path | None, typer.Option(help="the teacher's settings (YAML/JSON)")] = None,
    teacher_set: Annotated[
        list[str] | None, typer.Option("--teacher-set", help="one teacher setting, key=value; repeatable")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="teacher setting base_url, e.g. http://127.0.0.1:8000/v1")
    ] = None,
    model: Annotated[str | None, typer.Option(help="teacher setting model")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="teacher setting api_key_env: the variable holding the key")
    ] = None,
    teacher_mode: Annotated[str | None, typer.Option(help="teacher setting mode: single|staged")] = None,
    structured_output: Annotated[
        str | None, typer.Option(help="teacher setting structured_output: auto|json_schema|json_object|prompt")
    ] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="teacher setting images=false (text-only)")] = False,
    concurrency: Annotated[int | None, typer.Option(help="teacher setting concurrency: requests in flight")] = None,
    max_cost: Annotated[float | None, typer.Option(help="teacher setting max_cost: stop sending at this USD")] = None,
    export_to: Annotated[str | None, typer.Option("--export", help="then export: llamafactory,robust-r1,trl")] = None,
    task: Annotated[
        Literal["answer", "degradation-qa"],
        typer.Option(help="answer (the source's questions) or degradation-qa (perception tasks from the records)"),
    ] = "answer",
    keep_clean: Annotated[
        bool, typer.Option("--keep-clean", help="store each clean image too (for restoration pairs: --to robust-u1)")
    ] = False,
    ssim: Annotated[
        bool,
        typer.Option(
            "--ssim", help="record each sample's SSIM too (about 7% more CPU at 512 px; always on for degradation-qa)"
        ),
    ] = False,
    license: Annotated[str | None, typer.Option(help="the dataset's licence, stated in its card")] = None,
    judge: Annotated[
        str | None, typer.Option("--judge", help="score accepted chains with this model (off by default)")
    ] = None,
    judge_base_url: Annotated[str | None, typer.Option(help="the judge's endpoint")] = None,
    judge_api_key_env: Annotated[str | None, typer.Option(help="the variable holding the judge's key")] = None,
    judge_set: Annotated[
        list[str] | None, typer.Option("--judge-set", help="one judge setting, key=value; repeatable")
    ] = None,
) -> None:
    """Build a dataset: degrade every source row, have the teacher write its chain, write it all to --out.

    Teacher settings come from --teacher-config, then --teacher-set key=value, then the shortcuts (--model,
    --base-url, ...), each validated by the chosen teacher's own config."""
    from robustgen.annotate.registry import parse_sets
    from robustgen.annotate.registry import teacher_config as load_teacher_config
    from robustgen.pipelines.job import SynthConfig, release_ray
    from robustgen.pipelines.job import synth as run_synth

    with user_errors():
        from robustgen.pipelines.card import check_license

        check_license(license)  # a licence the card would refuse is refused before any work
        _check_formats(fmt, export_to, keep_clean)
        rec = Recipe.load(recipe) if recipe is not None else Recipe()
        shortcuts = {
            "base_url": base_url,
            "model": model,
            "api_key_env": api_key_env,
            "mode": teacher_mode,
            "structured_output": structured_output,
            "images": False if no_images else None,
            "concurrency": concurrency,
            "max_cost": max_cost,
        }
        settings = {**parse_sets(teacher_set or []), **{k: v for k, v in shortcuts.items() if v is not None}}
        tc = load_teacher_config(teacher, teacher_config, settings)
        judge_cfg = _judge_settings(judge, judge_base_url, judge_api_key_env, judge_set)
        try:
            cfg = SynthConfig(
                out=out_dir,
                source=source,
                format=fmt,
                recipe=rec.to_dict(),
                seed=seed,
                limit=limit,
                teacher=teacher,
                teacher_config=tc.model_dump(mode="json", exclude_unset=True),
                workers=workers,
                ray_address=ray_address,
                image_format=image_format,
                question=question,
                coco_root=coco_root,
                split=split,
                overwrite=overwrite,
                batch_size=batch_size,
                retry_failed=retry_failed,
                judge=judge_cfg,
                task=task,
                keep_clean=keep_clean,
                ssim=ssim,
                executor=executor,
            )
        except ValidationError as exc:  # e.g. --executor foo, --task bar: the option and what it accepts
            raise settings_error(exc, lambda loc: "--" + "-".join(map(str, loc)).replace("_", "-")) from None
        if dry_run:
            from robustgen.pipelines.estimate import dry_run as estimate

            out.print(estimate(cfg))
            return
        cfg.teacher_obj.preflight()  # a teacher that cannot start (no key) is a usage error, before any work
        try:
            summary = _run_with_progress(cfg, run_synth)
        except (RobustgenError, KeyboardInterrupt, OSError):
            raise
        except Exception as exc:  # Ray or the filesystem failed under us: say so in one line
            first = first_line(exc)
            complain(
                "error", "red", f"the run stopped: {type(exc).__name__}: {first}; re-run the same command to resume"
            )
            raise typer.Exit(1) from None
    stopping = release_ray()  # Ray's processes stop while the card and exports are written
    try:
        _after_synth(summary, out_dir, license, export_to)
    finally:
        if stopping is not None:
            stopping.join()


def _check_formats(fmt: str, export_to: str | None, keep_clean: bool) -> None:
    """The source format and every asked-for export are known and possible with these options: refused before any
    work, not after."""
    from robustgen.pipelines.formats import exporter, source_format

    if fmt not in ("auto", "samples"):
        source_format(fmt)
    for name in [f.strip() for f in (export_to or "").split(",") if f.strip()]:
        if exporter(name, "--export").needs_clean and not keep_clean:
            raise RobustgenError(f"--export {name} pairs degraded and clean images: add --keep-clean")


def _after_synth(summary, out_dir: str, license: str | None, export_to: str | None) -> None:
    """The run's summary line, the dataset card and the asked-for exports."""
    out.print(
        f"{summary.written} written, {summary.failed} failed of {summary.total} "
        f"({summary.resumed} from an earlier run) in {summary.seconds:.1f}s -> {out_dir}"
        + (f"; {summary.tokens} tokens, ${summary.cost_usd:.4f}" if summary.tokens else "")
    )
    for reason, n in list(summary.failure_reasons.items())[:5]:
        err.print(f"  {n} x {escape(reason)}", highlight=False)
    if "://" not in out_dir:
        from robustgen.pipelines.card import write_card

        with user_errors():
            write_card(out_dir, license)
    if export_to:
        from robustgen.pipelines.exports import export

        with user_errors():
            for fmt in [f.strip() for f in export_to.split(",") if f.strip()]:
                out.print(f"exported {export(out_dir, fmt, Path(out_dir) / 'exports' / fmt)}")
    if summary.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _judge_settings(
    model: str | None, base_url: str | None, api_key_env: str | None, sets: list[str] | None
) -> dict | None:
    """The judge's validated settings, or None when no judge was asked for; one-line errors naming the key."""
    from pydantic import ValidationError

    from robustgen.annotate.judge import JudgeConfig
    from robustgen.annotate.registry import parse_sets

    settings = parse_sets(sets or [], "--judge-set")
    shortcuts = {"model": model, "base_url": base_url, "api_key_env": api_key_env}
    if not settings and all(v is None for v in shortcuts.values()):
        return None
    settings |= {k: v for k, v in shortcuts.items() if v is not None}
    try:
        return JudgeConfig.model_validate(settings).model_dump(mode="json")
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "judge"
        hint = " (--judge MODEL turns the judge on)" if where == "model" else ""
        raise RobustgenError(f"judge setting {where!r}: {e['msg']}{hint}") from None


#: seconds between progress lines when stderr is not a terminal
PROGRESS_EVERY_S = 10.0


def _run_with_progress(cfg, run_synth):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stats = {"failed": 0, "tokens": 0, "cost": 0.0, "done": 0, "total": None, "said": time.monotonic()}
    piped = not err.is_terminal  # no bar: a plain line every PROGRESS_EVERY_S instead, so a log shows the run going
    with Progress(
        TextColumn("[bold]synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("synth", total=None, info="")

        def on_start(n: int) -> None:
            stats["total"] = n
            bar.update(task, total=n)

        def on_plan(plan) -> None:
            err.print(escape(plan.line()), highlight=False, soft_wrap=True)

        def on_progress(row: dict) -> None:
            stats["failed"] += 0 if row["ok"] else 1
            stats["tokens"] += int(row["tokens"])
            stats["cost"] += float(row["cost"])
            rate = bar.tasks[0].completed / max(bar.tasks[0].elapsed or 1e-9, 1e-9)
            info = f"{stats['failed']} failed, {rate:.1f}/s"
            if stats["tokens"]:
                info += f", {stats['tokens']} tokens, ${stats['cost']:.4f}"
            bar.update(task, advance=1, info=info)
            stats["done"] += 1
            if piped and time.monotonic() - stats["said"] >= PROGRESS_EVERY_S:
                stats["said"] = time.monotonic()
                of = f"/{stats['total']}" if stats["total"] else ""
                err.print(f"synth: {stats['done']}{of} rows, {info}", highlight=False, soft_wrap=True)

        return run_synth(cfg, on_progress=on_progress, on_start=on_start, on_plan=on_plan)
