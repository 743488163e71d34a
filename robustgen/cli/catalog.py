"""What robustgen offers: degraders, recipes, teachers; calibration and preview sheets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.cli.common import (
    SeedOpt,
    app,
    err,
    out,
    user_errors,
)
from robustgen.degrade import registry
from robustgen.errors import RobustgenError
from robustgen.images import load_image, write_image
from robustgen.schemas import Stage

PANEL = "What is available"


@app.command("list", rich_help_panel=PANEL)
def list_cmd(
    stage: Annotated[Stage | None, typer.Option(help="only this stage")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False,
) -> None:
    """Every registered degrader: name, TYPE label, stage, params schema, and whether `calibrated: true` can bring
    it to the catalog's quality drop at severity 0.5 (the shipped table)."""
    from robustgen.degrade.calibration import report, shipped_table

    cal = report(shipped_table())["degraders"]

    def calibration(name: str) -> str:
        r = cal.get(name)
        if r is None:
            return "not in the table"
        if r["geometric"]:
            return "geometric (not calibrated)"
        return "reaches the target" if r["ok"] else r["why"]

    items = registry.degraders(stage)
    if as_json:
        rows = [
            {
                "name": d.name,
                "label": d.label,
                "stage": d.stage.value,
                "influence": d.influence,
                "geometric": d.geometric,
                "visible_from": d.visible_from,
                "module": type(d).__module__,
                "params": d.params_schema(),
                "calibration": calibration(d.name),
            }
            for d in items
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(items)} degraders")
    for col in ("name", "label", "stage", "params", "calibrated at 0.5"):
        table.add_column(col)
    for d in items:
        table.add_row(d.name, d.label, d.stage.value, ", ".join(d.Params.model_fields), calibration(d.name))
    out.print(table)


@app.command("calibrate", rich_help_panel=PANEL)
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
        table = measure(
            refs, names, seeds=seeds, on_degrader=lambda name, k, n: err.print(f"calibrate: {name} ({k}/{n})")
        )
        out_file.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    rep = report(table)
    misses = [f"{n} ({r['why']})" for n, r in rep["degraders"].items() if not r["ok"] and not r["geometric"]]
    out.print(
        f"wrote {out_file}: {len(table['degraders'])} degraders on {len(refs)} images; at severity 0.5 the target "
        f"1 - SSIM is {rep['target']}, {100 * rep['share_within']:.0f}% of the non-geometric degraders within "
        f"+-0.05 once calibrated" + (f"; not: {', '.join(misses)}" if misses else "")
    )
    out.print(
        f"use it in a recipe: calibrated: true and calibration: {out_file.resolve()} (or a path relative to the recipe)"
    )


@app.command("recipes", rich_help_panel=PANEL)
def recipes_cmd() -> None:
    """The recipes shipped with robustgen (use one with --recipe NAME)."""
    from robustgen.degrade.recipes import presets

    table = Table(title="recipes (--recipe NAME)")
    table.add_column("name")
    table.add_column("what it draws")
    for name, description in presets().items():
        table.add_row(name, description)
    out.print(table)


@app.command("teachers", rich_help_panel=PANEL)
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


@app.command(rich_help_panel=PANEL)
def preview(
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write")] = Path("preview.png"),
    image: Annotated[str, typer.Option(help="image file or skimage:NAME")] = "skimage:astronaut",
    degrader: Annotated[list[str] | None, typer.Option(help="degrader name; repeatable (default: all)")] = None,
    seed: SeedOpt = 0,
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
