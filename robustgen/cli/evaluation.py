"""Robustness evaluation: corrupt-eval, rebuild, eval, eval-report, eval-compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.cli.common import (
    EXIT_SOME_FAILED,
    FormatOpt,
    OutDir,
    ProtocolOpt,
    RecipeOpt,
    SeedOpt,
    app,
    complain,
    out,
    settings_error,
    user_errors,
)
from robustgen.degrade.recipes import Recipe
from robustgen.errors import RobustgenError

PANEL = "Evaluate a model"


@app.command("corrupt-eval", rich_help_panel=PANEL)
def corrupt_eval_cmd(
    source: Annotated[Path, typer.Argument(help="a VLMEvalKit .tsv or an image folder")],
    out_dir: OutDir,
    levels: Annotated[
        str, typer.Option(help="severities; files are named by percent of the strongest")
    ] = "0.23,0.45,0.9",
    recipe: RecipeOpt = None,
    seed: SeedOpt = 0,
    manifest_only: Annotated[
        bool,
        typer.Option("--manifest-only", help="write one small manifest (records + pixel hashes) instead of images"),
    ] = False,
    protocol: ProtocolOpt = "recipe",
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


@app.command("eval", rich_help_panel=PANEL)
def eval_cmd(
    source: Annotated[str, typer.Argument(help="a VLMEvalKit .tsv or any synth source (jsonl, csv, parquet, samples)")],
    out_dir: Annotated[Path, typer.Option("--out", help="run folder: predictions/, report.*")],
    model: Annotated[str, typer.Option(help="the VLM to evaluate")],
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint")] = None,
    api_key_env: Annotated[str, typer.Option(help="the variable holding the key")] = "OPENAI_API_KEY",
    levels: Annotated[str, typer.Option(help="severities, named like corrupt-eval's")] = "0.23,0.45,0.9",
    recipe: RecipeOpt = None,
    seed: SeedOpt = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N items")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight")] = 4,
    rpm: Annotated[float, typer.Option(min=0, help="requests per minute (0 = unlimited)")] = 0.0,
    max_cost: Annotated[float | None, typer.Option(help="stop sending at this USD total")] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="text only (for text-only endpoints)")] = False,
    fmt: FormatOpt = "auto",
    protocol: ProtocolOpt = "recipe",
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
            raise settings_error(exc, lambda loc: "eval setting " + ".".join(map(str, loc))) from None
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


@app.command("eval-report", rich_help_panel=PANEL)
def eval_report_cmd(
    vlmeval_preds: Annotated[
        list[Path], typer.Option("--vlmeval-preds", help="VLMEvalKit prediction files (clean and _Robust_NN)")
    ],
    manifest: Annotated[Path, typer.Option(help="the corrupt-eval manifest the _Robust_ sets were built from")],
    out_dir: Annotated[Path, typer.Option("--out", help="report folder")],
    seed: SeedOpt = 0,
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


@app.command("eval-compare", rich_help_panel=PANEL)
def eval_compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="an eval run folder (model A)")],
    run_b: Annotated[Path, typer.Argument(help="an eval run folder (model B)")],
    seed: SeedOpt = 0,
    force: Annotated[
        bool, typer.Option("--force", help="compare runs asked on other inputs, levels or seed (said in the output)")
    ] = False,
) -> None:
    """Paired comparison of two models on the same items: per level B - A, its 95% interval, McNemar p."""
    from robustgen.eval.report import compare, finite

    with user_errors():
        result = compare(run_a, run_b, seed, force)
    sys.stdout.write(json.dumps(finite(result), indent=2) + "\n")


@app.command("rebuild", rich_help_panel=PANEL)
def rebuild_cmd(
    manifest: Annotated[Path, typer.Argument(help="a manifest written by `corrupt-eval --manifest-only`")],
    source: Annotated[Path, typer.Option("--source", help="the clean evaluation set (.tsv or image folder)")],
    out_dir: OutDir,
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
