"""The ``robustgen`` command line: a thin layer over the public Python API."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.degrade import registry
from robustgen.degrade.apply import replay
from robustgen.degrade.recipes import Recipe, fixed_plan, parse_spec
from robustgen.errors import RobustgenError, first_line
from robustgen.images import SAMPLE_IMAGES, SAMPLE_PREFIX, load_image, pixel_sha256, write_image
from robustgen.pipelines.plan import SMALL_RUN_ROWS
from robustgen.schemas import DegradationPlan, Stage
from robustgen.schemas.paths import regular_file_under
from robustgen.schemas.redaction import redact
from robustgen.schemas.sample import printable

app = typer.Typer(
    help="Degradation-aware reasoning datasets for vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(markup=False, highlight=False)  # plain output: paths and ids are never read as markup
err = Console(stderr=True)


def complain(tag: str, color: str, text: object) -> None:
    """One line on stderr: a coloured tag, then the (escaped) message."""
    err.print(f"[{color}]{tag}:[/{color}] {escape(redact(str(text)))}", highlight=False, soft_wrap=True)


EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes into one line on stderr and exit code 2."""
    try:
        yield
    except RobustgenError as exc:
        complain("error", "red", exc)
        raise typer.Exit(EXIT_USAGE) from None


@app.command("list")
def list_cmd(
    stage: Annotated[Stage | None, typer.Option(help="only this stage")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False,
) -> None:
    """Every registered degrader: name, TYPE label, stage and params schema."""
    items = registry.degraders(stage)
    if as_json:
        rows = [
            {
                "name": d.name,
                "label": d.label,
                "stage": d.stage.value,
                "influence": d.influence,
                "geometric": d.geometric,
                "module": type(d).__module__,
                "params": d.params_schema(),
            }
            for d in items
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(items)} degraders")
    for col in ("name", "label", "stage", "params"):
        table.add_column(col)
    for d in items:
        table.add_row(d.name, d.label, d.stage.value, ", ".join(d.Params.model_fields))
    out.print(table)


@app.command("calibrate")
def calibrate_cmd(
    images: Annotated[
        Path | None, typer.Option(help="reference images (default: the photos scikit-image ships)")
    ] = None,
    out_file: Annotated[Path, typer.Option("--out", help="the calibration table to write (JSON)")] = Path(
        "calibration.json"
    ),
    seeds: Annotated[int, typer.Option(min=1, max=10, help="noise seeds per image and severity")] = 2,
    degrader: Annotated[list[str] | None, typer.Option(help="only these degraders; repeatable")] = None,
) -> None:
    """Measure each degrader's mean quality drop (1 - SSIM and GMSD) against severity; write the table that
    `calibrated: true` recipes use (robustgen ships one built on the bundled photos)."""
    from robustgen.degrade.calibration import measure, reference_images, report

    with user_errors():
        refs = reference_images(images)
        if not refs:
            raise RobustgenError(f"{images}: no images found")
        names = [registry.get(n).name for n in degrader] if degrader else None
        table = measure(refs, names, seeds=seeds)
        out_file.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    rep = report(table)
    misses = [f"{n} ({r['why']})" for n, r in rep["degraders"].items() if not r["ok"] and not r["geometric"]]
    out.print(
        f"wrote {out_file}: {len(table['degraders'])} degraders on {len(refs)} images; at severity 0.5 the target "
        f"1 - SSIM is {rep['target']}, {100 * rep['share_within']:.0f}% of the non-geometric degraders within "
        f"+-0.05 once calibrated" + (f"; not: {', '.join(misses)}" if misses else "")
    )


@app.command("recipes")
def recipes_cmd() -> None:
    """The recipes shipped with robustgen (use one with --recipe NAME)."""
    from robustgen.degrade.recipes import presets

    table = Table(title="recipes (--recipe NAME)")
    table.add_column("name")
    table.add_column("what it draws")
    for name, description in presets().items():
        table.add_row(name, description)
    out.print(table)


@app.command("teachers")
def teachers_cmd(as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False) -> None:
    """Every registered teacher (built-ins and robustgen.teachers plugins) and its settings."""
    from robustgen.annotate.registry import teacher_class, teacher_names

    rows = []
    for name in teacher_names():
        cls = teacher_class(name)
        rows.append(
            {"name": name, "module": cls.__module__, "pooled": cls.pooled, "settings": list(cls.Config.model_fields)}
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(rows)} teachers")
    for col in ("name", "module", "settings"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["module"], ", ".join(r["settings"]) or "-")
    out.print(table)


def _collect_inputs(inputs: list[str], samples: bool) -> list[tuple[str, str, str]]:
    """(sample id, source reference, problem) triples; ids are unique and stable. A folder's member that is not
    a regular file inside it (a symlink pointing out, a FIFO) comes with its problem and becomes a failure."""
    found: list[tuple[str, str, str]] = []
    if samples:
        found += [(name, SAMPLE_PREFIX + name, "") for name in SAMPLE_IMAGES]
    for raw in inputs:
        p = Path(raw)
        if raw.startswith(SAMPLE_PREFIX):
            found.append((raw[len(SAMPLE_PREFIX) :], raw, ""))
        elif p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and not q.is_dir()):
                rel = f.relative_to(p)
                sid = "__".join(rel.with_suffix("").parts)
                try:
                    found.append((sid, str(regular_file_under(p, str(rel))), ""))
                except ValueError as exc:
                    found.append((sid, str(f), str(exc)))
        else:
            found.append((p.stem or "image", str(p.resolve()) if p.exists() else raw, ""))
    seen: dict[str, int] = {}
    unique = []
    for sid, ref, problem in found:
        n = seen.get(sid, 0)
        seen[sid] = n + 1
        unique.append((sid if n == 0 else f"{sid}-{n + 1}", ref, problem))
    return unique


def _append_jsonl(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


@app.command()
def degrade(
    inputs: Annotated[list[str] | None, typer.Argument(help="image files, folders, or skimage:NAME")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out"),
    recipe: Annotated[Path | None, typer.Option(help="recipe YAML/JSON (default: built-in recipe)")] = None,
    degrader: Annotated[list[str] | None, typer.Option(help="NAME[=SEVERITY] (default 0.5); repeatable")] = None,
    seed: Annotated[int, typer.Option(min=0, help="run seed")] = 0,
    samples: Annotated[bool, typer.Option("--samples", help="also use the photos scikit-image ships")] = False,
    image_format: Annotated[str, typer.Option(help="png (lossless) or jpg (q95)")] = "png",
) -> None:
    """Degrade images; writes them plus records.jsonl (one DegradationPlan per image) into --out."""
    from robustgen.pipelines.output import safe_name

    with user_errors():
        if recipe is not None and degrader:
            raise RobustgenError("use either --recipe or --degrader, not both")
        if image_format not in ("png", "jpg"):
            raise RobustgenError(f"--image-format: expected png or jpg, got {image_format!r}")
        items = _collect_inputs(inputs or [], samples)
        if not items:
            raise RobustgenError("no input images: pass files, folders, skimage:NAME or --samples")
        specs = [parse_spec(s) for s in degrader] if degrader else None
        rec = Recipe.load(recipe) if recipe is not None else Recipe()
    out_dir.mkdir(parents=True, exist_ok=True)
    records, failures = out_dir / "records.jsonl", out_dir / "failures.jsonl"
    for p in (records, failures):
        p.unlink(missing_ok=True)
    failed = 0
    for sid, ref, problem in items:
        try:
            if problem:
                raise RobustgenError(problem)
            image = load_image(ref)
            plan: DegradationPlan = fixed_plan(specs, seed, sid) if specs else rec.sample(seed=seed, sample_id=sid)
            result = replay(image, plan.degradations)
            target = out_dir / f"{safe_name(sid)}.{image_format}"
            write_image(target, result)
        except RobustgenError as exc:
            failed += 1
            complain("skipped", "yellow", exc)
            _append_jsonl(failures, {"id": sid, "source": ref, "reason": str(exc)})
            continue
        _append_jsonl(
            records,
            {
                "id": sid,
                "source": ref,
                "output": target.name,
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "sha256": pixel_sha256(result),
                "plan": plan.model_dump(mode="json"),
            },
        )
    written = len(items) - failed
    out.print(f"wrote {written} image(s) and {records}" + (f"; {failed} failed, see {failures}" if failed else ""))
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("replay")
def replay_cmd(
    records: Annotated[Path, typer.Argument(help="records.jsonl written by `robustgen degrade`")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("replayed"),
    check: Annotated[bool, typer.Option("--check", help="verify pixel hashes against the records")] = False,
) -> None:
    """Re-render degraded images from their records (byte-identical to the originals)."""
    from robustgen.pipelines.output import safe_name

    with user_errors():
        if not records.is_file():
            raise RobustgenError(f"{records}: no such file")
    out_dir.mkdir(parents=True, exist_ok=True)
    bad = mismatched = done = 0
    with records.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{records}:{lineno}"
            try:
                row = json.loads(line.decode("utf-8"))  # a line that is not UTF-8 fails alone
                if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
                    raise ValueError("a record needs a text 'id'")
                plan = DegradationPlan.model_validate(row["plan"])  # every parameter inside its schema's bounds
                ref = row["source"]
                if not isinstance(ref, str):
                    raise ValueError("'source' must be a path or skimage:NAME")
                if not ref.startswith(SAMPLE_PREFIX):  # a regular file, relative refs under the records' folder
                    ref = str(regular_file_under(records.parent, ref) if not Path(ref).is_absolute() else ref)
                result = replay(load_image(ref), plan.degradations)
                # the id is data: its file name is the same injective, inside-the-folder name synth uses
                write_image(out_dir / f"{safe_name(row['id'])}.png", result)
            except (ValueError, KeyError, TypeError, RecursionError, RobustgenError) as exc:
                bad += 1
                msg = first_line(exc)
                complain("skipped", "yellow", f"{where}: {msg}")
                continue
            done += 1
            if check and pixel_sha256(result) != row.get("sha256"):
                mismatched += 1
                complain("mismatch", "red", f"{where}: {row['id']} differs from the recorded hash")
    verdict = f"; {done - mismatched}/{done} match their recorded hash" if check else ""
    out.print(f"replayed {done} image(s) into {out_dir}{verdict}")
    if mismatched:
        raise typer.Exit(1)
    if bad:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def preview(
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write")] = Path("preview.png"),
    image: Annotated[str, typer.Option(help="image file or skimage:NAME")] = "skimage:astronaut",
    degrader: Annotated[list[str] | None, typer.Option(help="degrader name; repeatable (default: all)")] = None,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    cell: Annotated[int, typer.Option(min=32, max=1024, help="tile size in pixels")] = 192,
    calibrated: Annotated[
        bool, typer.Option("--calibrated", help="columns at calibrated severities (same mean drop per column)")
    ] = False,
) -> None:
    """A labelled contact sheet: one row per degrader at severities 0.1 0.25 0.5 0.75 1.0."""
    from robustgen.degrade.preview import contact_sheet

    with user_errors():
        names = [registry.get(n).name for n in degrader] if degrader else None
        if out_file.suffix.lower() != ".png":
            raise RobustgenError(f"--out {out_file}: preview writes PNG; use a .png file name")
        sheet = contact_sheet(load_image(image), names, seed=seed, cell=cell, calibrated=calibrated)
        write_image(out_file, sheet)
    out.print(f"wrote {out_file} ({sheet.shape[1]}x{sheet.shape[0]})")


def _settings_error(exc: ValidationError, name: Callable[[tuple], str]) -> RobustgenError:
    """A config that does not validate, as one line: the setting (``name`` of its location), its value, why."""
    err = exc.errors()[0]
    return RobustgenError(f"{name(err['loc'])} {err.get('input')!r}: {err['msg']}")


@app.command()
def synth(
    out_dir: Annotated[str, typer.Option("--out", help="output folder (or file:// / other pyarrow URI)")],
    source: Annotated[str, typer.Option(help="'samples' (built in) or a file/folder")] = "samples",
    fmt: Annotated[
        str, typer.Option("--format", help="auto|folder|jsonl|csv|llava|aokvqa|vlmeval-tsv|parquet")
    ] = "auto",
    recipe: Annotated[Path | None, typer.Option(help="recipe YAML/JSON")] = None,
    seed: Annotated[int, typer.Option(min=0, help="run seed")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N rows")] = None,
    teacher: Annotated[
        str, typer.Option(help="template (offline), openai, or a plugin's name (robustgen teachers)")
    ] = "template",
    workers: Annotated[int, typer.Option(min=1, help="worker CPUs (1: the run stays in this process)")] = 2,
    ray_address: Annotated[str | None, typer.Option(help="join an existing Ray cluster")] = None,
    executor: Annotated[
        str,
        typer.Option(
            help=f"auto (in this process for --workers 1 or up to {SMALL_RUN_ROWS} rows, else Ray Data), "
            "in-process, or ray"
        ),
    ] = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count and estimate; send nothing")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace what --out holds")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="on resume, try earlier failures again")] = False,
    image_format: Annotated[str, typer.Option(help="jpg (q95) or png (lossless)")] = "jpg",
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
        str, typer.Option(help="answer (the source's questions) or degradation-qa (perception tasks from the records)")
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
            raise _settings_error(exc, lambda loc: "--" + "-".join(map(str, loc)).replace("_", "-")) from None
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


def _run_with_progress(cfg, run_synth):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stats = {"failed": 0, "tokens": 0, "cost": 0.0}
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

        return run_synth(cfg, on_progress=on_progress, on_start=on_start, on_plan=on_plan)


@app.command("export")
def export_cmd(
    dataset: Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")],
    to: Annotated[str, typer.Option("--to", help="llamafactory | robust-r1 | trl | verl | easyr1 | robust-u1")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")],
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="downscale images above this many pixels (the trainer's max_pixels)")
    ] = None,
) -> None:
    """Export a dataset for LLaMA-Factory (ShareGPT), Robust-R1 GRPO (JSONL), TRL, verl or EasyR1 (parquet)."""
    from robustgen.pipelines.exports import export

    with user_errors():
        path = export(dataset, to, out_dir, max_pixels)
    out.print(f"wrote {path}")


@app.command("card")
def card_cmd(
    dataset: Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")],
    license: Annotated[str | None, typer.Option(help="the dataset's licence (an SPDX id such as cc-by-4.0)")] = None,
) -> None:
    """Write metadata.jsonl and the README dataset card, so `datasets.load_dataset(DIR)` loads the records."""
    from robustgen.pipelines.card import write_card

    with user_errors():
        path = write_card(dataset, license)
    out.print(f"wrote {path} and {path.parent / 'metadata.jsonl'}")


@app.command("push")
def push_cmd(
    dataset: Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")],
    repo: Annotated[str, typer.Option(help="the Hugging Face dataset repo, owner/name")],
    private: Annotated[bool, typer.Option("--private", help="create the repo private")] = False,
    token_env: Annotated[str, typer.Option(help="the variable holding the hub token")] = "HF_TOKEN",
) -> None:
    """Upload a dataset (records, images, card; never .work/ or exports/) to the Hugging Face hub."""
    from robustgen.pipelines.card import write_card
    from robustgen.pipelines.dataset import Dataset, validate_dataset

    with user_errors():
        problems = validate_dataset(dataset)
        if problems:
            raise RobustgenError(f"{dataset}: refusing to push a dataset that fails validation: {problems[0]}")
        if not (dataset / "README.md").is_file():
            write_card(dataset)
        try:
            from huggingface_hub import CommitOperationAdd, HfApi
        except ImportError as exc:
            raise RobustgenError(f"push needs huggingface_hub (pip install huggingface_hub): {exc}") from None
        try:
            files = Dataset.open(dataset).files()  # exactly what validate knows: no dotfile, no link, no work folder
        except ValueError as exc:
            raise RobustgenError(f"{dataset}: refusing to push: {exc}") from None
        plan = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(dataset / rel)) for rel in files]
        api = HfApi(token=os.environ.get(token_env) or None)
        try:
            api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            info = api.create_commit(
                repo, plan, repo_type="dataset", commit_message=f"robustgen dataset {dataset.name}"
            )
        except OSError as exc:  # network, auth (HTTP errors derive from OSError)
            raise RobustgenError(f"push to {repo} failed: {' '.join(str(exc).split())[:300]}") from None
    out.print(f"pushed {dataset} to {getattr(info, 'commit_url', repo)}")


@app.command("check")
def check_cmd(
    dataset: Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")],
    family: Annotated[str, typer.Option("--for", help="qwen2-vl | qwen2.5-vl | internvl | llava")],
    max_pixels: Annotated[int | None, typer.Option(min=1, help="the trainer's max_pixels")] = None,
    max_prompt_length: Annotated[int | None, typer.Option(min=1, help="the trainer's max prompt tokens")] = None,
    max_completion_length: Annotated[
        int | None, typer.Option(min=1, help="the trainer's max completion tokens")
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help="a local tokenizer folder (else lengths are estimated)")] = None,
) -> None:
    """Pre-flight for a model family: image tokens, prompt and chain lengths, <image> literals; exit 1 with
    counts when any record would break training."""
    from robustgen.pipelines.check import check_dataset, summary

    with user_errors():
        rep = check_dataset(dataset, family, max_pixels, max_prompt_length, max_completion_length, tokenizer)
    for p in rep.problems[:50]:
        complain("breaks", "red", p)
    sys.stdout.write(json.dumps(summary(rep), indent=2) + "\n")
    if rep.problems:
        raise typer.Exit(1)


@app.command("validate")
def validate_cmd(dataset: Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")]) -> None:
    """Check every record, image and count of a dataset; exit 1 with the list of problems if any."""
    from robustgen.pipelines.dataset import validate_dataset

    with user_errors():
        problems = validate_dataset(dataset)
    for p in problems:
        complain("problem", "red", p)
    if problems:
        err.print(f"{len(problems)} problem(s) in {escape(str(dataset))}")
        raise typer.Exit(1)
    out.print(f"{dataset}: valid")


@app.command("stats")
def stats_cmd(
    dataset: Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where plots and index.html go (default DATASET/stats)")
    ] = None,
) -> None:
    """Counts per degrader and stage, severity and reasoning-length plots, failure reasons, a sample gallery."""
    from robustgen.pipelines.stats import write_stats

    with user_errors():
        st, page = write_stats(dataset, out_dir)
    several = f" ({st['multi_image']} with several images)" if st["multi_image"] else ""
    table = Table(title=f"{st['n']} records{several}, {st['failed']} failures")
    table.add_column("stage / degrader")
    table.add_column("count", justify="right")
    for stage in Stage:
        table.add_row(Text(stage.value, style="bold"), str(st["by_stage"][stage.value]))
    for name, n in st["by_name"].most_common(10):
        table.add_row(f"  {name}", str(n))
    out.print(table)
    if st["n"]:
        from robustgen.annotate.gate import CODES

        rates = ", ".join(f"{c} {st['gate_fails'][c]}" for c in CODES)
        out.print(f"chain quality, failing per check (of {st['n']}): {rates}")
    if st["judge"]:
        j = st["judge"]
        out.print(
            f"judge: {j['judged']} judged, mean score {j['mean_score']}, {j['reasked']} re-asked, "
            f"{j['tokens']} tokens, ${j['cost_usd']}"
        )
    for reason, n in st["reasons"].most_common(5):
        out.print(f"  {n} x {reason}", highlight=False)
    out.print(f"plots and {page}")


@app.command("corrupt-eval")
def corrupt_eval_cmd(
    source: Annotated[Path, typer.Argument(help="a VLMEvalKit .tsv or an image folder")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")],
    levels: Annotated[
        str, typer.Option(help="severities; files are named by percent of the strongest")
    ] = "0.23,0.45,0.9",
    recipe: Annotated[Path | None, typer.Option(help="recipe YAML/JSON choosing the degraders")] = None,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    manifest_only: Annotated[
        bool,
        typer.Option("--manifest-only", help="write one small manifest (records + pixel hashes) instead of images"),
    ] = False,
    protocol: Annotated[
        str, typer.Option(help="recipe (default) or robust-r1 (the paper's generator, seeded)")
    ] = "recipe",
) -> None:
    """Degraded copies of an evaluation set, one per level, same degraders per image at every level."""
    from robustgen.pipelines.corrupt import corrupt_eval, parse_levels, protocol_recipe

    with user_errors():
        lv = parse_levels(levels)
        rec = protocol_recipe(protocol, Recipe.load(recipe) if recipe is not None else None)
        report = corrupt_eval(source, out_dir, lv, rec, seed, manifest_only=manifest_only)
    for p in report.paths:
        out.print(f"wrote {p}")
    if report.failed:
        complain(
            "warning", "yellow", f"{report.failed} of {report.total} image(s) unreadable: kept clean, see the sides"
        )
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("eval")
def eval_cmd(
    source: Annotated[str, typer.Argument(help="a VLMEvalKit .tsv or any synth source (jsonl, csv, parquet, samples)")],
    out_dir: Annotated[Path, typer.Option("--out", help="run folder: predictions/, report.*")],
    model: Annotated[str, typer.Option(help="the VLM to evaluate")],
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint")] = None,
    api_key_env: Annotated[str, typer.Option(help="the variable holding the key")] = "OPENAI_API_KEY",
    levels: Annotated[str, typer.Option(help="severities, named like corrupt-eval's")] = "0.23,0.45,0.9",
    recipe: Annotated[Path | None, typer.Option(help="recipe choosing the degraders")] = None,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N items")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight")] = 4,
    rpm: Annotated[float, typer.Option(min=0, help="requests per minute (0 = unlimited)")] = 0.0,
    max_cost: Annotated[float | None, typer.Option(help="stop sending at this USD total")] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="text only (for text-only endpoints)")] = False,
    fmt: Annotated[str, typer.Option("--format", help="source format (auto by default)")] = "auto",
    protocol: Annotated[
        str, typer.Option(help="recipe (default) or robust-r1 (the paper's generator, seeded)")
    ] = "recipe",
    extract_model: Annotated[
        str | None, typer.Option(help="a model that reads the option out of replies the rules cannot (off by default)")
    ] = None,
    source_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--source-root",
            help="a dataset input: a folder its records' source images may be read from, besides the manifest's "
            "source folders and the kept clean/ images; repeatable",
        ),
    ] = None,
    eval_set: Annotated[
        list[str] | None,
        typer.Option(
            "--eval-set",
            help="one endpoint setting, key=value (price_in, price_out, timeout_s, max_retries, max_retry_after_s, "
            "tpm, ...); repeatable",
        ),
    ] = None,
) -> None:
    """Ask a VLM every question on the clean image and at every level; write predictions and the report."""
    from robustgen.annotate.registry import parse_sets
    from robustgen.eval.report import write_report
    from robustgen.eval.run import EvalConfig, run_eval
    from robustgen.pipelines.corrupt import parse_levels, protocol_recipe

    with user_errors():
        rec = protocol_recipe(protocol, Recipe.load(recipe) if recipe is not None else None)
        try:
            sets = parse_sets(eval_set or [], "--eval-set")
            own = {"input": "the SOURCE argument", "out": "--out", "model": "--model", "levels": "--levels"}
            own |= {"recipe": "--recipe", "seed": "--seed", "format": "--format", "limit": "--limit"}
            own |= {"source_roots": "--source-root"}
            if clash := sorted(set(sets) & set(own)):
                raise RobustgenError(f"--eval-set {clash[0]}: set it with {own[clash[0]]}")
            settings = {
                "base_url": base_url,
                "api_key_env": api_key_env,
                "concurrency": concurrency,
                "rpm": rpm,
                "max_cost": max_cost,
                "images": not no_images,
                "extract_model": extract_model,
                "source_roots": [str(r.resolve()) for r in source_root or []],
                **sets,  # --eval-set key=value over the shortcuts
            }
            cfg = EvalConfig(
                input=source,
                out=str(out_dir),
                model=model,
                format=fmt,
                levels=parse_levels(levels),
                recipe=rec.to_dict(),
                seed=seed,
                limit=limit,
                **settings,
            )
        except ValidationError as exc:
            raise _settings_error(exc, lambda loc: "eval setting " + ".".join(map(str, loc))) from None
        summary = run_eval(cfg)
        report = write_report(out_dir, seed)
    accs = ", ".join(
        f"{name} {100 * c['accuracy']:.1f}%" for name, c in report["levels"].items() if c["accuracy"] == c["accuracy"]
    )
    out.print(
        f"{summary.items} items, {summary.asked} answers asked ({summary.resumed} items from an earlier run), "
        f"{summary.failed} failed; {accs} -> {out_dir / 'report.md'}"
    )
    if summary.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("eval-report")
def eval_report_cmd(
    vlmeval_preds: Annotated[
        list[Path], typer.Option("--vlmeval-preds", help="VLMEvalKit prediction files (clean and _Robust_NN)")
    ],
    manifest: Annotated[Path, typer.Option(help="the corrupt-eval manifest the _Robust_ sets were built from")],
    out_dir: Annotated[Path, typer.Option("--out", help="report folder")],
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """The robustness report from VLMEvalKit's own predictions, without re-running a model."""
    from robustgen.eval.report import write_report
    from robustgen.eval.vlmeval import predictions_from_vlmeval

    with user_errors():
        counts = predictions_from_vlmeval(vlmeval_preds, manifest, out_dir)
        report = write_report(out_dir, seed)
    for name, c in report["levels"].items():
        out.print(f"{name}: {counts.get(name, 0)} rows, accuracy {c['accuracy']:.3f}")
    out.print(f"-> {out_dir / 'report.md'}")


@app.command("eval-compare")
def eval_compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="an eval run folder (model A)")],
    run_b: Annotated[Path, typer.Argument(help="an eval run folder (model B)")],
    seed: Annotated[int, typer.Option(min=0)] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="compare runs asked on other inputs, levels or seed (said in the output)")
    ] = False,
) -> None:
    """Paired comparison of two models on the same items: per level B - A, its 95% interval, McNemar p."""
    from robustgen.eval.report import compare, finite

    with user_errors():
        result = compare(run_a, run_b, seed, force)
    sys.stdout.write(json.dumps(finite(result), indent=2) + "\n")


@app.command("rebuild")
def rebuild_cmd(
    manifest: Annotated[Path, typer.Argument(help="a manifest written by `corrupt-eval --manifest-only`")],
    source: Annotated[Path, typer.Option("--source", help="the clean evaluation set (.tsv or image folder)")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")],
) -> None:
    """Rebuild corrupt-eval's files from a manifest and the clean source, checking every image's pixel hash."""
    from robustgen.pipelines.corrupt import rebuild

    with user_errors():
        report = rebuild(manifest, source, out_dir)
    for p in report.paths:
        out.print(f"wrote {p}")
    if report.mismatched:
        shown = ", ".join(report.mismatched[:20]) + (" ..." if len(report.mismatched) > 20 else "")
        complain("mismatch", "red", f"{len(report.mismatched)} row(s) differ from the manifest: {shown}")
        for rid, why in list(report.reasons.items())[:20]:
            complain("failed", "red", f"{rid}: {why}")
        raise typer.Exit(EXIT_SOME_FAILED)
    out.print(f"every image matches the manifest ({report.total} rows)")


train_app = typer.Typer(
    help="GRPO / SFT on TRL (needs the train extra: torch, transformers, trl).", no_args_is_help=True
)
app.add_typer(train_app, name="train")


def _train(kind: str, config: Path) -> None:
    with user_errors():
        try:
            from robustgen.train.trainer import TrainConfig, grpo, sft
        except ImportError as exc:
            raise RobustgenError(f"training needs the train extra (pip install 'robustgen[train]'): {exc}") from None
        from pydantic import ValidationError

        try:
            cfg = TrainConfig.load(config)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"]) or "config"
            hint = " (trainer settings go under args:)" if e["type"] == "extra_forbidden" else ""
            raise RobustgenError(f"{config}: {where}: {e['msg']}{hint}") from None
        except (OSError, ValueError) as exc:
            raise RobustgenError(f"{config}: {str(exc).splitlines()[0]}") from None
        trainer = (grpo if kind == "grpo" else sft)(cfg)
    last = next((h for h in reversed(trainer.state.log_history) if "loss" in h), {})
    out.print(f"{kind}: {trainer.state.global_step} steps, last loss {last.get('loss')}, output in {cfg.output_dir}")


@train_app.command("grpo")
def train_grpo(config: Annotated[Path, typer.Option("--config", help="training YAML")]) -> None:
    """GRPO with the Robust-R1 rewards (accuracy, format, r_deg, r_len); `preset: paper` by default."""
    _train("grpo", config)


@train_app.command("sft")
def train_sft(config: Annotated[Path, typer.Option("--config", help="training YAML")]) -> None:
    """Supervised fine-tuning on the reference chains."""
    _train("sft", config)


def describe_os_error(exc: OSError) -> str:
    """'PATH: cause' for a filesystem error (read-only folder, a file where a folder should be, disk full)."""
    where = exc.filename if exc.filename is not None else ""
    cause = exc.strerror or str(exc)
    return f"{printable(str(where))}: {cause}" if where != "" else cause


def main() -> None:
    """The error boundary: no traceback reaches a user. Environment problems (a read-only or missing folder, a
    file where a folder should be) exit 2 naming the path; anything else exits 1 in one line, with the traceback
    only under ROBUSTGEN_DEBUG=1."""
    try:
        app()  # typer answers usage errors (exit 2) and --help itself
    except RobustgenError as exc:
        complain("error", "red", exc)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        complain("error", "red", describe_os_error(exc))
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001  (a bug of ours: one line, the traceback on request)
        if os.environ.get("ROBUSTGEN_DEBUG"):
            raise
        first = first_line(exc)
        complain(
            "error", "red", f"internal error: {type(exc).__name__}: {first} (ROBUSTGEN_DEBUG=1 shows the traceback)"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
