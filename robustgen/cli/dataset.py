"""Working with a written dataset: export, card, push, check, validate, stats."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.cli.common import (
    DatasetArg,
    OutDir,
    app,
    complain,
    err,
    out,
    user_errors,
)
from robustgen.errors import RobustgenError
from robustgen.schemas import Stage

PANEL = "Use a dataset"


@app.command("export", rich_help_panel=PANEL)
def export_cmd(
    dataset: DatasetArg,
    to: Annotated[
        str,
        typer.Option(
            "--to", help="llamafactory, robust-r1, trl, verl, easyr1, robust-u1, or a plugin's (robustgen.exporters)"
        ),
    ],
    out_dir: OutDir,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="downscale images above this many pixels (the trainer's max_pixels)")
    ] = None,
) -> None:
    """Export a dataset for LLaMA-Factory (ShareGPT), Robust-R1 GRPO (JSONL), TRL, verl or EasyR1 (parquet)."""
    from robustgen.pipelines.exports import export

    with user_errors():
        path = export(dataset, to, out_dir, max_pixels)
    out.print(f"wrote {path}")


@app.command("card", rich_help_panel=PANEL)
def card_cmd(
    dataset: DatasetArg,
    license: Annotated[str | None, typer.Option(help="the dataset's licence (an SPDX id such as cc-by-4.0)")] = None,
) -> None:
    """Write metadata.jsonl and the README dataset card, so `datasets.load_dataset(DIR)` loads the records."""
    from robustgen.pipelines.card import write_card

    with user_errors():
        path = write_card(dataset, license)
    out.print(f"wrote {path} and {path.parent / 'metadata.jsonl'}")


@app.command("push", rich_help_panel=PANEL)
def push_cmd(
    dataset: DatasetArg,
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
            raise RobustgenError(f"push needs huggingface_hub: pip install 'robustgen[hub]' ({exc})") from None
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


@app.command("check", rich_help_panel=PANEL)
def check_cmd(
    dataset: DatasetArg,
    family: Annotated[
        Literal["qwen2-vl", "qwen2.5-vl", "internvl", "llava"], typer.Option("--for", help="model family")
    ],
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


@app.command("validate", rich_help_panel=PANEL)
def validate_cmd(dataset: DatasetArg) -> None:
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


@app.command("stats", rich_help_panel=PANEL)
def stats_cmd(
    dataset: DatasetArg,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where plots and index.html go (default DATASET/stats)")
    ] = None,
    gallery: Annotated[int, typer.Option(min=0, help="records shown in the page's gallery")] = 12,
) -> None:
    """Counts per degrader and stage, severity and reasoning-length plots, failure reasons, a sample gallery."""
    from robustgen.pipelines.stats import write_stats

    with user_errors():
        st, page = write_stats(dataset, out_dir, gallery)
    several = f" ({st['multi_image']} with several images)" if st["multi_image"] else ""
    damaged = f" (and {len(st['damaged'])} damaged lines in failures.jsonl)" if st["damaged"] else ""
    table = Table(title=f"{st['n']} records{several}, {st['failed']} failures{damaged}")
    table.add_column("stage / degrader")
    table.add_column("applied", justify="right")
    for stage in Stage:  # every degrader under its own stage
        table.add_row(Text(stage.value, style="bold"), str(st["by_stage"][stage.value]))
        for name, n in st["stage_names"][stage.value].most_common():
            table.add_row(f"  {name}", str(n))
    out.print(table)
    for line in st["damaged"][:10]:
        complain("damaged", "yellow", line)
    if v := st["visibility"]:
        weakest = sorted(v["degraders"].items(), key=lambda kv: kv[1]["median_ssim_drop"])[:3]
        out.print(
            f"visibility: {v['steps']} steps measured, {100 * v['near_floor']:.1f}% within 1.5x of the floor; "
            "weakest (median 1 - SSIM): " + ", ".join(f"{n} {r['median_ssim_drop']}" for n, r in weakest)
        )
    if st["dropped"]:
        out.print(
            "dropped as invisible even at full strength: "
            + ", ".join(f"{n} x{c}" for n, c in st["dropped"].most_common())
        )
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
