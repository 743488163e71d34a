"""Exports of a synth dataset to what trainers read unchanged: LLaMA-Factory, Robust-R1 GRPO, TRL."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import cv2

from robustgen.annotate.wording import join_words
from robustgen.errors import RobustgenError
from robustgen.pipelines.dataset import Dataset, validate_dataset
from robustgen.schemas import DatasetRecord
from robustgen.schemas.chain import ROBUST_R1_INSTRUCTION
from robustgen.schemas.chain import question_text as _question_text
from robustgen.schemas.training import TRAINING_FEATURES, training_row

ROW_GROUP = 256  # rows per parquet row group: exports stream, holding one group's images at a time


def question_text(rec: DatasetRecord) -> str:
    return _question_text(rec.question, rec.choices)


def _tokens(rec: DatasetRecord) -> str:
    """One ``<image>`` placeholder per image of the record, in order."""
    return "<image>" * len(rec.images)


def _place_all(ds: Dataset, rec: DatasetRecord, out: Path, max_pixels: int | None, strip: str = "") -> list[str]:
    """Place every image of ``rec`` under ``out`` (paths kept, less the ``strip`` prefix); their paths there."""
    rels = [rel.removeprefix(strip) for rel in rec.images]
    for src, rel in zip(rec.images_in(ds.root), rels, strict=True):
        _place_image(src, out / rel, max_pixels)
    return rels


def _bounded(src: Path, max_pixels: int | None) -> bytes | None:
    """The image re-encoded within ``max_pixels`` (area-downscaled, aspect kept), or None when it already fits."""
    if not max_pixels:
        return None
    from robustgen.images import encode, read_image

    image = read_image(src)
    h, w = image.shape[:2]
    if h * w <= max_pixels:
        return None
    k = math.sqrt(max_pixels / (h * w))
    small = cv2.resize(image, (max(1, int(w * k)), max(1, int(h * k))), interpolation=cv2.INTER_AREA)
    return encode(small, src.suffix.lstrip(".") or "png")


def _place_image(src: Path, dst: Path, max_pixels: int | None = None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    if (data := _bounded(src, max_pixels)) is not None:
        dst.write_bytes(data)
        return
    try:
        os.link(src, dst)  # same filesystem: no copy
    except OSError:
        shutil.copyfile(src, dst)


def _checked(root: str | Path | Dataset) -> Dataset:
    if isinstance(root, Dataset):
        return root  # checked by the caller (``export``)
    problems = validate_dataset(root)
    if problems:
        more = f" (and {len(problems) - 1} more; run `robustgen validate {root}`)" if len(problems) > 1 else ""
        raise RobustgenError(f"{root}: refusing to export a dataset that fails validation: {problems[0]}{more}")
    return Dataset.open(root)


def _dataset_info(path: Path) -> dict:
    """The dataset_info.json already in the export folder (other datasets are kept); a broken one is refused."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError):
        raise RobustgenError(f"{path}: not valid JSON; fix or remove it (other datasets may be listed there)") from None
    if not isinstance(info, dict):
        raise RobustgenError(f"{path}: expected a JSON object mapping dataset names to their settings")
    return info


def export_llamafactory(
    root: str | Path, out: str | Path, name: str = "robustgen", max_pixels: int | None = None
) -> Path:
    """ShareGPT JSON + dataset_info.json; image paths relative to ``out``."""
    ds, out = _checked(root), Path(out)
    rows = []
    for rec in ds.iter_records():
        rels = _place_all(ds, rec, out, max_pixels)
        rows.append(
            {
                "id": rec.id,
                "conversations": [
                    {"from": "human", "value": f"{_tokens(rec)}{question_text(rec)}\n{ROBUST_R1_INSTRUCTION}"},
                    {"from": "gpt", "value": rec.response},
                ],
                "images": rels,
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    info_path = out / "dataset_info.json"
    info = _dataset_info(info_path)
    info[name] = {
        "file_name": f"{name}.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
    }
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out / f"{name}.json"


def export_robust_r1(root: str | Path, out: str | Path, max_pixels: int | None = None) -> Path:
    """The JSONL that Robust-R1's grpo_jsonl.py reads with --data_file_paths / --image_folders OUT/images
    (``image`` a path, or a list of paths for a multi-image record, as VLM-R1's loader takes them)."""
    ds, out = _checked(root), Path(out)
    lines = []
    for rec in ds.iter_records():
        rels = _place_all(ds, rec, out / "images", max_pixels, strip="images/")
        lines.append(
            json.dumps(
                {
                    "id": rec.id,
                    "image": rels[0] if len(rels) == 1 else rels,
                    "conversations": [
                        {"from": "human", "value": f"{_tokens(rec)}{question_text(rec)}"},
                        {"from": "gpt", "value": rec.response},
                    ],
                },
                ensure_ascii=False,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "robust_r1.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def export_trl(root: str | Path, out: str | Path, max_pixels: int | None = None) -> Path:
    """A parquet file `datasets.load_dataset("parquet", ...)` reads: conversational ``prompt``, ``images``
    (decoded as PIL images by `datasets`), and the reward columns ``solution``, ``answer``, ``choices``,
    ``degradations`` (one row builder with ``robustgen.train``). Written in row groups: one group's images in
    memory at a time."""
    import pyarrow as pa

    ds, out = _checked(root), Path(out)
    text = pa.struct([("type", pa.string()), ("text", pa.string())])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.list_(text))]))),
            ("images", pa.list_(_image_struct())),
            ("solution", pa.string()),
            ("answer", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("degradations", pa.string()),
        ],
        metadata={b"huggingface": json.dumps({"info": {"features": TRAINING_FEATURES}}).encode()},
    )
    path = out / "train.parquet"
    _stream_parquet(
        path, schema, ({**training_row(r), "images": _image_cells(ds, r, max_pixels)} for r in ds.iter_records())
    )
    return path


def _image_struct():
    """An encoded image as parquet holds it (and `datasets` decodes it): ``{bytes, path}``."""
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _image_cells(ds: Dataset, rec: DatasetRecord, max_pixels: int | None = None) -> list[dict[str, Any]]:
    """Every image of ``rec`` as a parquet image cell, in prompt order."""
    return [
        {"bytes": _bounded(src, max_pixels) or src.read_bytes(), "path": Path(rel).name}
        for src, rel in zip(rec.images_in(ds.root), rec.images, strict=True)
    ]


def _stream_parquet(path: Path, schema, rows) -> None:
    """Write ``rows`` (an iterator of dicts) as parquet, one row group of ``ROW_GROUP`` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with pq.ParquetWriter(tmp, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    tmp.replace(path)


def export_verl(root: str | Path, out: str | Path, max_pixels: int | None = None) -> Path:
    """verl's RLHFDataset parquet: ``data_source``, a chat ``prompt`` whose text holds one ``<image>``
    placeholder per image (verl splits on it), ``images`` as ``{bytes, path}``, ``ability``, ``reward_model``
    (rule style, the ground truth) and ``extra_info`` (index, id, question, answer, choices, the reference chain
    and the exact degradation records)."""
    import pyarrow as pa

    ds, out = _checked(root), Path(out)
    image = _image_struct()
    schema = pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("images", pa.list_(image)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("index", pa.int64()),
                        ("id", pa.string()),
                        ("question", pa.string()),
                        ("answer", pa.string()),
                        ("choices", pa.list_(pa.string())),
                        ("solution", pa.string()),
                        ("degradations", pa.string()),
                    ]
                ),
            ),
        ]
    )

    def rows():
        for i, rec in enumerate(ds.iter_records()):
            row = training_row(rec)  # the reward columns, built once for every consumer
            text = f"{_tokens(rec)}{question_text(rec)}\n{ROBUST_R1_INSTRUCTION}"
            yield {
                "data_source": "robustgen",
                "prompt": [{"role": "user", "content": text}],
                "images": _image_cells(ds, rec, max_pixels),
                "ability": "robust-vqa",
                "reward_model": {"style": "rule", "ground_truth": rec.chain.answer},
                "extra_info": {
                    "index": i,
                    "id": rec.id,
                    "question": rec.question,
                    "answer": rec.chain.answer,
                    **{k: row[k] for k in ("choices", "solution", "degradations")},
                },
            }

    path = out / "train.parquet"
    _stream_parquet(path, schema, rows())
    return path


def export_easyr1(root: str | Path, out: str | Path, max_pixels: int | None = None) -> Path:
    """EasyR1's multimodal layout (as its geometry3k example): ``problem`` holding the ``<image>`` placeholder,
    ``answer`` (the ground truth its rule rewards compare with) and ``images``; plus ``id``, ``choices``,
    ``solution`` and ``degradations`` for robustgen's own rewards. Use ``data.prompt_key=problem
    data.answer_key=answer data.image_key=images``."""
    import pyarrow as pa

    ds, out = _checked(root), Path(out)
    image = _image_struct()
    schema = pa.schema(
        [
            ("problem", pa.string()),
            ("answer", pa.string()),
            ("images", pa.list_(image)),
            ("id", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("solution", pa.string()),
            ("degradations", pa.string()),
        ]
    )

    def rows():
        for rec in ds.iter_records():
            row = training_row(rec)
            yield {
                "problem": f"{_tokens(rec)}{question_text(rec)}",
                "answer": rec.chain.answer,
                "images": _image_cells(ds, rec, max_pixels),
                **{k: row[k] for k in ("id", "choices", "solution", "degradations")},
            }

    path = out / "train.parquet"
    _stream_parquet(path, schema, rows())
    return path


def export_robust_u1(root: str | Path, out: str | Path, max_pixels: int | None = None) -> Path:
    """Robust-U1's restoration pairs: JSONL rows ``{prompt, image, target_image}`` (degraded -> clean), paths
    relative to ``out``; needs a dataset built with ``synth --keep-clean``. Clean images shared by several
    samples are placed once; each image of a multi-image record is its own pair (id ``<id>~<k>`` for k >= 2)."""
    ds, out = _checked(root), Path(out)
    lines = []
    for rec in ds.iter_records():
        if rec.clean_image is None:
            raise RobustgenError(f"{root}: record {rec.id} has no clean image; build the dataset with --keep-clean")
        _place_image(rec.clean_image_in(ds.root), out / rec.clean_image, max_pixels)
        rels = _place_all(ds, rec, out, max_pixels)
        versions = [rec.degradations, *(x.degradations for x in rec.extra_images)]
        for k, (rel, degs) in enumerate(zip(rels, versions, strict=True), start=1):
            labels = list(dict.fromkeys(d.label for d in degs))
            what = join_words([f"the {label}" for label in labels])
            prompt = (
                f"<image>Restore this image: remove {what} to recover the clean picture."
                if labels
                else "<image>This image is clean: return it unchanged."
            )
            pair_id = rec.id if k == 1 else f"{rec.id}~{k}"
            row = {"id": pair_id, "prompt": prompt, "image": rel, "target_image": rec.clean_image}
            lines.append(json.dumps(row, ensure_ascii=False))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "robust_u1.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def export(root: str | Path, fmt: str, out: str | Path, max_pixels: int | None = None) -> Path:
    """Export the dataset at ``root`` as ``fmt`` (a built-in format or a ``robustgen.exporters`` plugin) into
    ``out``; a dataset that fails ``validate`` is refused."""
    from robustgen.pipelines.formats import exporter

    writer = exporter(fmt)
    return writer.export(_checked(root), Path(out), max_pixels)


def _register_builtins() -> None:
    from robustgen.pipelines.formats import ExportFormat, register_exporter

    def llamafactory(ds: Dataset, out: Path, max_pixels: int | None) -> Path:
        return export_llamafactory(ds, out, max_pixels=max_pixels)

    builtins = [
        ExportFormat("llamafactory", llamafactory, "LLaMA-Factory ShareGPT JSON + dataset_info.json"),
        ExportFormat("robust-r1", export_robust_r1, "Robust-R1 / VLM-R1 GRPO JSONL"),
        ExportFormat("trl", export_trl, "a TRL-ready parquet"),
        ExportFormat("verl", export_verl, "verl RL parquet"),
        ExportFormat("easyr1", export_easyr1, "EasyR1 parquet"),
        ExportFormat("robust-u1", export_robust_u1, "Robust-U1 restoration pairs", needs_clean=True),
    ]
    for fmt in builtins:
        register_exporter(fmt)


_register_builtins()
