"""Degrading images directly and replaying records: ``degrade`` and ``replay``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.cli.common import (
    EXIT_SOME_FAILED,
    OutDir,
    RecipeOpt,
    SeedOpt,
    app,
    complain,
    out,
    user_errors,
)
from robustgen.degrade.apply import replay
from robustgen.degrade.recipes import Recipe, fixed_plan, parse_spec
from robustgen.errors import RobustgenError, first_line
from robustgen.images import SAMPLE_IMAGES, SAMPLE_PREFIX, load_image, pixel_sha256, write_image
from robustgen.pipelines.sources import IMAGE_SUFFIXES
from robustgen.schemas import DegradationPlan
from robustgen.schemas.paths import regular_file_under

PANEL = "Degrade and replay"


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


@app.command(rich_help_panel=PANEL)
def degrade(
    inputs: Annotated[list[str] | None, typer.Argument(help="image files, folders, or skimage:NAME")] = None,
    out_dir: OutDir = Path("out"),
    recipe: RecipeOpt = None,
    degrader: Annotated[list[str] | None, typer.Option(help="NAME[=SEVERITY] (default 0.5); repeatable")] = None,
    seed: SeedOpt = 0,
    samples: Annotated[bool, typer.Option("--samples", help="also use the photos scikit-image ships")] = False,
    image_format: Annotated[str, typer.Option(help="png (lossless) or jpg (q95)")] = "png",
) -> None:
    """Degrade images; writes them plus records.jsonl (one DegradationPlan per image) into --out."""
    from robustgen.pipelines.folders import describe, holds, in_dataset
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
        if (kind := holds(out_dir)) in ("eval", "eval-report"):
            raise RobustgenError(f"--out {out_dir}: holds {describe(kind)}; choose another folder")
        if (ds := in_dataset(out_dir)) is not None:
            raise RobustgenError(f"--out {out_dir}: lies in the robustgen dataset {ds}; choose a folder outside it")
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


@app.command("replay", rich_help_panel=PANEL)
def replay_cmd(
    records: Annotated[
        list[Path],
        typer.Argument(
            help="what to replay: a synth dataset folder or its shards (DIR/data/part-*.jsonl), or the "
            "records.jsonl `robustgen degrade` writes"
        ),
    ],
    out_dir: OutDir = Path("replayed"),
    check: Annotated[
        bool, typer.Option("--check", help="compare each replay with the stored image (or the recorded hash)")
    ] = False,
    source_root: Annotated[
        list[Path] | None,
        typer.Option("--source-root", help="a dataset: a folder its records' source images may be read from"),
    ] = None,
) -> None:
    """Re-render degraded images from their records, byte for byte as they were written."""
    from robustgen.pipelines.folders import in_dataset
    from robustgen.pipelines.replay import dataset_of, replay_dataset

    with user_errors():
        for path in records:
            if not path.exists():
                raise RobustgenError(f"{path}: no such file or folder")
        if (ds := in_dataset(out_dir)) is not None:
            raise RobustgenError(f"--out {out_dir}: lies in the robustgen dataset {ds}; choose a folder outside it")
    totals = {"done": 0, "bad": 0, "mismatched": 0}
    for path in records:
        with user_errors():
            found = dataset_of(path)
        if found is not None:
            ds, shards = found
            count = replay_dataset(ds, shards, out_dir, check, source_root or [], lambda k, t: complain(k, "red", t))
            totals["done"] += count.images
            totals["bad"] += count.failed
            totals["mismatched"] += count.mismatched
            continue
        done, bad, mismatched = _replay_records(path, out_dir, check)
        totals["done"] += done
        totals["bad"] += bad
        totals["mismatched"] += mismatched
    done, mismatched = totals["done"], totals["mismatched"]
    verdict = f"; {done - mismatched}/{done} match what was written" if check else ""
    out.print(f"replayed {done} image(s) into {out_dir}{verdict}")
    if mismatched:
        raise typer.Exit(1)
    if totals["bad"]:
        raise typer.Exit(EXIT_SOME_FAILED)


def _replay_records(records: Path, out_dir: Path, check: bool) -> tuple[int, int, int]:
    """Replay a ``degrade`` records.jsonl: (images done, lines skipped, hash mismatches)."""
    from robustgen.pipelines.output import safe_name

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
    return done, bad, mismatched
