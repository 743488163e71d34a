"""The per-sample stages, run inside Ray tasks and actors (and by the driver while Ray starts): each takes a
typed value and returns the next one or a ``Failure``.

    SourceRow --degrade_row--> DegradedSample --annotate_sample--> DatasetRecord --write_shard--> data/*.jsonl
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from pydantic import ValidationError

from robustgen.annotate.base import Teacher, TeacherFailure, TeacherInput
from robustgen.annotate.contract import check_record
from robustgen.annotate.gate import gate_chain, quality_of
from robustgen.degrade.quality import psnr, ssim
from robustgen.degrade.recipes import Recipe
from robustgen.degrade.visibility import realize
from robustgen.errors import RobustgenError, first_line, row_reason, stops_the_run
from robustgen.images import SAMPLE_PREFIX, decode, encode, load_image, pixel_sha256, read_bytes
from robustgen.pipelines.output import DATA_DIR, WORK_DIR, Output, image_relpath, shard_name
from robustgen.schemas import (
    DatasetRecord,
    DegradedSample,
    ExtraImage,
    Failure,
    LengthBand,
    Quality,
    SourceRow,
    TeacherResult,
    render_chain,
)
from robustgen.schemas.recipe import ChainGate

Images = tuple[np.ndarray, ...]  # (clean, degraded, later images of a multi-image task...)


def load_row_image(row: SourceRow) -> np.ndarray:
    """The clean image of a row, decoded with the same guards whatever the source."""
    if row.image_bytes is not None:
        return decode(row.image_bytes, row.image or row.source)
    assert row.image is not None
    if row.image.startswith(SAMPLE_PREFIX):
        return load_image(row.image)
    return decode(read_bytes(row.image), row.image)


def fail(row: SourceRow, stage: str, reason: str, **kw: Any) -> Failure:
    return Failure(id=row.id, source=row.source, stage=stage, reason=reason, **kw)


def degrade_row(
    row: SourceRow,
    recipe: Recipe,
    seed: int,
    out: Output,
    image_format: str,
    task: str = "answer",
    keep_clean: bool = False,
    with_ssim: bool = False,
    stored_pixels: bool = False,
) -> tuple[DegradedSample, Images] | Failure:
    """Decode, plan, degrade and write the degraded image(s); the sample and its pixels, or a failure (any exception
    but an interrupt is this row's failure, and images it wrote are removed). With ``task`` ``degradation-qa`` the
    row's question becomes a perception task about its own degradations (which may show two versions of the image,
    told apart by their SSIM: always measured there). ``with_ssim``: measure SSIM for the answer task too (about 7%
    more CPU per 512 px sample); PSNR is always measured. ``stored_pixels``: the degraded pixels returned are the
    stored file's, decoded (what a trainer reads, and what a teacher that looks must see), not the pre-encoding
    render."""
    written: list[str] = []
    try:
        clean = load_row_image(row)
        plan = recipe.sample(seed=seed, sample_id=row.id)
        # every step held to the visibility floor on the image it is applied to (records hold what was applied)
        table = recipe.calibration_table() if recipe.calibrated else None  # calibrated steps aimed on this image
        real = realize(clean, plan.degradations, recipe.visibility, seed, row.id, table=table)
        versions = [real.records]
        renders, qualities = [real.image], [_quality(clean, real.image, with_ssim or task == "degradation-qa")]
        if task == "degradation-qa":
            from robustgen.pipelines.perception import perception_task

            asked = perception_task(row, real.records, seed)
            if asked.kind == "compare":  # two versions of the picture: each held to the floor too
                held = [
                    realize(
                        clean, v, recipe.visibility, seed, row.id, f"visible-v{i}", table, real.source_planes
                    )  # the clean image measured once
                    for i, v in enumerate(asked.versions)
                ]
                pair = [_quality(clean, h.image, True) for h in held]
                # the two versions differ in strength only (same draws): one the floor had to draw again is not a pair
                alike = not any(h.redrawn or h.dropped for h in held)
                restated = asked.held([h.records for h in held], pair) if alike else None
                if restated is not None:
                    asked, versions = restated, restated.versions
                    renders, qualities = [h.image for h in held], pair
                else:  # a version lost a step, or the two are too alike (or turned round): ask something else
                    asked = perception_task(row, real.records, seed, two_images=False)
            row = asked.row
            if asked.kind != "compare":
                versions = [real.records]
        rels = [image_relpath(row.id, image_format, k) for k in range(1, len(renders) + 1)]
        for k, (rel, degraded) in enumerate(zip(rels, renders, strict=True)):
            data = encode(degraded, image_format)
            written.append(rel)
            out.write_bytes(rel, data, atomic=False)
            if stored_pixels and image_format != "png":  # PNG is lossless: the render is what was stored
                renders[k] = decode(data, rel)
        clean_rel = write_clean(out, clean) if keep_clean else None
        h, w = clean.shape[:2]
        extra = [
            ExtraImage(image=rel, degradations=v, quality=q)
            for rel, v, q in zip(rels[1:], versions[1:], qualities[1:], strict=True)
        ]
        sample = DegradedSample(
            row=row,
            image=rels[0],
            width=w,
            height=h,
            degradations=versions[0],
            quality=qualities[0],
            clean_image=clean_rel,
            extra_images=extra,
            dropped=real.dropped,
        )
    except BaseException as exc:
        if stops_the_run(exc):
            raise
        discard(out, written)
        if isinstance(exc, OSError):
            return fail(row, "write", f"could not write the image: {exc}")
        return fail(row, "degrade" if isinstance(exc, RobustgenError) else "internal", row_reason(exc))
    return sample, (clean, *renders)


def discard(out: Output, rels: list[str]) -> None:
    """Remove the images of a row that failed: nothing of it stays in the dataset folder (``push`` uploads the
    folder's images). Content-addressed clean images are shared by samples of one source image and stay."""
    for rel in rels:
        try:
            out.delete(rel)
        except OSError:
            pass  # already gone, or the folder turned read-only: validate does not count stray files


def _quality(clean: np.ndarray, degraded: np.ndarray, with_ssim: bool) -> Quality:
    """A version's quality against the clean image (SSIM only when asked: it costs 0.6 ms a sample)."""
    return Quality(psnr=round(psnr(clean, degraded), 4), ssim=round(ssim(clean, degraded), 6) if with_ssim else None)


def write_clean(out: Output, clean: np.ndarray) -> str:
    """The clean image, content-addressed (``clean/ab/<sha256 of the pixels>.png``): a source image shared by
    many samples is stored once. Lossless, so the pair is exact."""
    digest = pixel_sha256(clean)
    rel = f"clean/{digest[:2]}/{digest}.png"
    if not out.exists(rel):
        out.write_bytes(rel, encode(clean, "png"))  # atomic: two samples of one source may race to it
    return rel


def reload_images(sample: DegradedSample, out: Output) -> Images:
    """The clean and degraded pixels of a sample that crossed a process boundary as a path."""
    degraded = [decode(out.read_bytes(rel), rel) for rel in sample.images]
    return (load_row_image(sample.row), *degraded)


async def annotate_sample(
    teacher: Teacher,
    sample: DegradedSample,
    band: LengthBand,
    out: Output,
    images: Images | None = None,
    gate: ChainGate | None = None,
) -> DatasetRecord | Failure:
    """The teacher's chain for one sample, as the record to write, or a failure. Whatever the teacher (plugins
    included), the record passes the record contract (``check_record``: TYPE, answer, length band, gate, replay)
    before it is written; any exception but an interrupt is this row's failure. A failed row's images are
    removed."""
    result = _annotated(teacher, sample, band, out, images, gate or ChainGate())
    try:
        record = await result
    except BaseException as exc:
        if stops_the_run(exc):
            raise
        record = fail(sample.row, "internal", row_reason(exc))
    if isinstance(record, Failure):
        await asyncio.to_thread(discard, out, sample.images)  # an object store's deletes must not stall the loop
    return record


async def _annotated(
    teacher: Teacher,
    sample: DegradedSample,
    band: LengthBand,
    out: Output,
    images: Images | None,
    gate: ChainGate,
) -> DatasetRecord | Failure:
    row = sample.row
    try:
        if teacher.wants_images and images is None:
            images = await asyncio.to_thread(reload_images, sample, out)  # decoding must not stall the event loop
        wanted = images if teacher.wants_images else None
        item = TeacherInput.for_row(row, sample.degradations, band, wanted, gate)
        result = await teacher.annotate(item)
        if not isinstance(result, TeacherResult):
            return fail(row, "annotate", f"the teacher returned {type(result).__name__}, not a TeacherResult")
        findings = gate_chain(result.chain, sample.degradations, row.question, row.choices, gate)
    except TeacherFailure as exc:
        return fail(row, exc.stage, exc.reason, usage=exc.usage)
    except RobustgenError as exc:
        return fail(row, "annotate", first_line(exc))
    try:
        record = DatasetRecord(
            id=row.id,
            image=sample.image,
            source_image=row.image_ref,
            width=sample.width,
            height=sample.height,
            question=row.question,
            answer=row.answer,
            choices=row.choices,
            rationale=row.rationale,
            degradations=sample.degradations,
            chain=result.chain,
            response=render_chain(result.chain),
            teacher={**result.teacher.model_dump(), "usage": result.usage.model_dump()},
            quality=sample.quality,
            chain_quality=quality_of(findings, gate),
            clean_image=sample.clean_image,
            extra_images=sample.extra_images,
            dropped=sample.dropped,
            judge=result.judge,
        )
    except ValidationError as exc:
        return fail(row, "validate", f"the record does not validate: {exc.errors()[0]['msg']}", usage=result.usage)
    problems = check_record(record, band, gate, findings)
    if len(problems) > len(findings):  # more than the gate's findings: the contract itself is broken
        return fail(row, "validate", "the record breaks the contract: " + "; ".join(problems), usage=result.usage)
    if findings:
        return fail(row, "quality", "chain quality: " + "; ".join(str(f) for f in findings), usage=result.usage)
    return record


async def annotate_all(
    teacher: Teacher,
    items: list[tuple[DegradedSample, Images | None]],
    band: LengthBand,
    out: Output,
    gate: ChainGate | None = None,
) -> list[DatasetRecord | Failure]:
    """Annotate samples concurrently (the teacher bounds its own requests); results in input order."""
    return list(await asyncio.gather(*(annotate_sample(teacher, s, band, out, im, gate) for s, im in items)))


def _usage_of(result: DatasetRecord | Failure) -> dict[str, Any]:
    if isinstance(result, Failure):
        return result.usage.model_dump() if result.usage else {}
    return result.teacher.get("usage") or {}


def write_shard(out: Output, results: list[DatasetRecord | Failure]) -> dict[str, list]:
    """Write a batch's records as one data shard and its failures as one failure shard, each atomically;
    returns the progress columns (id, ok, tokens, cost) the driver counts."""
    records = [r for r in results if isinstance(r, DatasetRecord)]
    fails = [r for r in results if isinstance(r, Failure)]
    if records:
        lines = "".join(r.model_dump_json(exclude_none=False) + "\n" for r in records)
        out.write_text(f"{DATA_DIR}/{shard_name([r.id for r in records], 'part')}", lines)
    if fails:
        lines = "".join(json.dumps(f.model_dump(mode="json", exclude_none=True), sort_keys=True) + "\n" for f in fails)
        out.write_text(f"{WORK_DIR}/failures/{shard_name([f.id for f in fails], 'fail')}", lines)
    progress: dict[str, list] = {"id": [], "ok": [], "tokens": [], "cost": []}
    for r in results:
        usage = _usage_of(r)
        progress["id"].append(r.id)
        progress["ok"].append(isinstance(r, DatasetRecord))
        progress["tokens"].append(int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)))
        progress["cost"].append(float(usage.get("cost_usd", 0.0)))
    return progress
