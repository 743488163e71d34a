"""A dataset that loads anywhere: ``metadata.jsonl`` beside the images and a README dataset card whose YAML
``configs`` the ``datasets`` library reads, so ``datasets.load_dataset(DIR)`` gives the records with their
images decoded; the card states the provenance (recipe, seed, teacher and model, versions, counts, licence)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robustgen.pipelines.dataset import Dataset

#: record fields whose values differ in shape from row to row: kept as JSON text so Arrow can type the column
JSON_FIELDS = ("degradations", "chain", "teacher", "judge", "chain_quality", "extra_images")


def metadata_row(rec: dict[str, Any]) -> dict[str, Any]:
    row = {"file_name": rec["image"]}
    for key, value in rec.items():
        if key == "image":
            continue
        row[key] = json.dumps(value, ensure_ascii=False) if key in JSON_FIELDS and value is not None else value
    return row


def card_text(manifest: dict[str, Any], n: int, license: str | None) -> str:
    recipe = manifest.get("recipe") if isinstance(manifest.get("recipe"), dict) else {}
    teacher = manifest.get("teacher") if isinstance(manifest.get("teacher"), dict) else {}
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
    yaml_lines = [
        "---",
        f"license: {license or 'other'}",
        "task_categories:",
        "- visual-question-answering",
        "tags:",
        "- robustgen",
        "- degradation-aware-reasoning",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path:",
        '    - "metadata.jsonl"',
        '    - "images/**"',
        "---",
    ]
    body = [
        "# A degradation-aware reasoning dataset made with robustgen",
        "",
        "    import datasets",
        '    ds = datasets.load_dataset("PATH_OR_REPO", split="train")   # images decoded, one record per row',
        "",
        f"- records: {n} (written {counts.get('written')}, failed {counts.get('failed')} of {counts.get('total')})",
        f"- recipe: {recipe.get('name', 'default')} (exactly as in manifest.json), seed {manifest.get('seed')}",
        f"- teacher: {teacher.get('kind')} {teacher.get('model', '')}".rstrip(),
        f"- versions: {', '.join(f'{k} {v}' for k, v in sorted(versions.items()))}",
        f"- licence: {license or 'not stated (set it with robustgen card DIR --license ID)'}",
        "",
        "Columns: the degraded `image`, `id`, `question`, `answer`, `choices`, the tagged `response`, and as JSON "
        "text the exact `degradations`, the `chain`, the `teacher` usage, the quality gate's `chain_quality` and the "
        "judge's verdict.",
    ]
    return "\n".join(yaml_lines + [""] + body) + "\n"


def write_card(root: str | Path, license: str | None = None) -> Path:
    """Write ``metadata.jsonl`` and ``README.md`` into a synth output folder; returns the README's path."""
    ds = Dataset.open(root)
    license = license or ds.manifest.get("license")
    meta = ds.root / "metadata.jsonl"
    tmp = meta.with_name(".tmp-metadata.jsonl")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:  # streamed in id order: memory stays flat at any size
        for _, line in ds.lines_by_id(strict=False):
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                continue  # `validate` reports it; the card lists what loads
            if isinstance(obj, dict) and isinstance(obj.get("image"), str):
                f.write(json.dumps(metadata_row(obj), ensure_ascii=False) + "\n")
                n += 1
    tmp.replace(meta)
    readme = ds.root / "README.md"
    readme.write_text(card_text(ds.manifest, n, license), encoding="utf-8")
    if license and ds.manifest.get("license") != license:
        ds.manifest["license"] = license
        (ds.root / "manifest.json").write_text(json.dumps(ds.manifest, indent=2, sort_keys=True), encoding="utf-8")
    return readme
