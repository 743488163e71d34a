"""The ``robustgen`` command line: a thin layer over the public Python API."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from robustgen.degrade import registry
from robustgen.degrade.apply import replay
from robustgen.degrade.image import SAMPLE_IMAGES, SAMPLE_PREFIX, load_image, pixel_sha256, write_image
from robustgen.degrade.recipes import Recipe, fixed_plan, parse_spec
from robustgen.errors import RobustgenError
from robustgen.schemas import DegradationPlan, Stage

app = typer.Typer(
    help="Degradation-aware reasoning datasets for vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes into one line on stderr and exit code 2."""
    try:
        yield
    except RobustgenError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
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


def _collect_inputs(inputs: list[str], samples: bool) -> list[tuple[str, str]]:
    """(sample id, source reference) pairs; ids are unique and stable."""
    found: list[tuple[str, str]] = []
    if samples:
        found += [(name, SAMPLE_PREFIX + name) for name in SAMPLE_IMAGES]
    for raw in inputs:
        p = Path(raw)
        if raw.startswith(SAMPLE_PREFIX):
            found.append((raw[len(SAMPLE_PREFIX) :], raw))
        elif p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()):
                rel = f.relative_to(p).with_suffix("")
                found.append(("__".join(rel.parts), str(f.resolve())))
        else:
            found.append((p.stem or "image", str(p.resolve()) if p.exists() else raw))
    seen: dict[str, int] = {}
    unique = []
    for sid, ref in found:
        n = seen.get(sid, 0)
        seen[sid] = n + 1
        unique.append((sid if n == 0 else f"{sid}-{n + 1}", ref))
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
    for sid, ref in items:
        try:
            image = load_image(ref)
            plan: DegradationPlan = fixed_plan(specs, seed, sid) if specs else rec.sample(seed=seed, sample_id=sid)
            result = replay(image, plan.degradations)
            target = out_dir / f"{sid}.{image_format}"
            write_image(target, result)
        except RobustgenError as exc:
            failed += 1
            err.print(f"[yellow]skipped:[/yellow] {exc}", highlight=False, soft_wrap=True)
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
    with user_errors():
        if not records.is_file():
            raise RobustgenError(f"{records}: no such file")
    out_dir.mkdir(parents=True, exist_ok=True)
    bad = mismatched = done = 0
    with records.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{records}:{lineno}"
            try:
                row = json.loads(line)
                plan = DegradationPlan.model_validate(row["plan"])
                ref = row["source"]
                if not ref.startswith(SAMPLE_PREFIX) and not Path(ref).is_absolute():
                    ref = str(records.parent / ref)
                result = replay(load_image(ref), plan.degradations)
                write_image(out_dir / f"{row['id']}.png", result)
            except (ValueError, KeyError, TypeError, RobustgenError) as exc:
                bad += 1
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                err.print(f"[yellow]skipped:[/yellow] {where}: {msg}", highlight=False, soft_wrap=True)
                continue
            done += 1
            if check and pixel_sha256(result) != row.get("sha256"):
                mismatched += 1
                err.print(f"[red]mismatch:[/red] {where}: {row['id']} differs from the recorded hash", highlight=False)
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
) -> None:
    """A labelled contact sheet: one row per degrader at severities 0.1 0.25 0.5 0.75 1.0."""
    from robustgen.degrade.preview import contact_sheet

    with user_errors():
        names = [registry.get(n).name for n in degrader] if degrader else None
        if out_file.suffix.lower() != ".png":
            raise RobustgenError(f"--out {out_file}: preview writes PNG; use a .png file name")
        sheet = contact_sheet(load_image(image), names, seed=seed, cell=cell)
        write_image(out_file, sheet)
    out.print(f"wrote {out_file} ({sheet.shape[1]}x{sheet.shape[0]})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
