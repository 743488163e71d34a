"""A dataset that loads anywhere: ``metadata.jsonl`` beside the images and a README dataset card whose YAML
``configs`` the ``datasets`` library reads, so ``datasets.load_dataset(DIR)`` gives the records with their
images decoded; the card states the provenance (recipe, seed, teacher and model, versions, counts, licence)."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from robustgen.errors import RobustgenError
from robustgen.pipelines.dataset import Dataset
from robustgen.pipelines.formats import jsonl_sink
from robustgen.schemas.paths import write_file

#: the licence ids the Hugging Face hub accepts in a card (SPDX ids in lower case, plus a few of its own)
LICENSES = frozenset(
    """apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc
    cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0
    cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
    cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl
    gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc intel-research lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++
    osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr llama2 llama3 llama3.1 llama3.2 llama3.3 gemma
    unknown other""".split()
)


def check_license(value: str | None) -> str | None:
    """A licence as a card states it (lower case), or ``RobustgenError`` naming the closest accepted ids."""
    if value is None:
        return None
    norm = value.strip().lower()
    if norm in LICENSES:
        return norm
    close = difflib.get_close_matches(norm, sorted(LICENSES), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (an SPDX id such as cc-by-4.0, or 'other')"
    raise RobustgenError(f"--license {value!r}: not a licence id the dataset card accepts{hint}")


def _md(value: Any) -> str:
    """A value from a manifest as Markdown text: one line, every character Markdown or HTML would read escaped."""
    text = " ".join(str(value).split())[:200]
    return re.sub(r"([\\`*_{}\[\]()<>#|~&!:])", r"\\\1", text)  # ':' too: no bare URL turns into a link


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
    """The card: YAML front matter made by a YAML serialiser from fixed keys and a checked licence, then a body in
    which every value taken from the manifest is escaped (a manifest is data, never markup)."""
    recipe = manifest.get("recipe") if isinstance(manifest.get("recipe"), dict) else {}
    teacher = manifest.get("teacher") if isinstance(manifest.get("teacher"), dict) else {}
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
    try:
        license = check_license(license)
    except RobustgenError:
        license = None  # a manifest's licence that is not an id: the card says "other"
    front = {
        "license": license or "other",
        "task_categories": ["visual-question-answering"],
        "tags": ["robustgen", "degradation-aware-reasoning"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": ["metadata.jsonl", "images/**"]}],
            }
        ],
    }
    teacher_line = " ".join(_md(v) for v in (teacher.get("kind"), teacher.get("model", "")) if v)
    body = [
        "# A degradation-aware reasoning dataset made with robustgen",
        "",
        "    import datasets",
        '    ds = datasets.load_dataset("PATH_OR_REPO", split="train")   # images decoded, one record per row',
        "",
        f"- records: {n} (written {_md(counts.get('written'))}, failed {_md(counts.get('failed'))} of "
        f"{_md(counts.get('total'))})",
        f"- recipe: {_md(recipe.get('name', 'default'))} (exactly as in manifest.json), seed "
        f"{_md(manifest.get('seed'))}",
        f"- teacher: {teacher_line}".rstrip(),
        f"- versions: {', '.join(f'{_md(k)} {_md(v)}' for k, v in sorted(versions.items(), key=str))}",
        f"- licence: {license or 'not stated (set it with robustgen card DIR --license ID)'}",
        "",
        "Columns: the degraded `image`, `id`, `question`, `answer`, `choices`, the tagged `response`, and as JSON "
        "text the exact `degradations`, the `chain`, the `teacher` usage, the quality gate's `chain_quality` and the "
        "judge's verdict.",
    ]
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=False)
    return "---\n" + head + "---\n\n" + "\n".join(body) + "\n"


def write_card(root: str | Path, license: str | None = None) -> Path:
    """Write ``metadata.jsonl`` and ``README.md`` into a synth output folder; returns the README's path. Every file
    is written to a fresh temporary file beside its target and renamed over it, so a symbolic link planted in the
    folder is replaced, never written through."""
    given = check_license(license)
    ds = Dataset.open(root)
    n = 0
    with jsonl_sink(ds.root / "metadata.jsonl") as write:  # streamed in id order: memory stays flat at any size
        for _, line in ds.lines_by_id(strict=False):
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                continue  # `validate` reports it; the card lists what loads
            if isinstance(obj, dict) and isinstance(obj.get("image"), str):
                write(metadata_row(obj))
                n += 1
    readme = write_file(ds.root, "README.md", card_text(ds.manifest, n, given or ds.manifest.get("license")).encode())
    if given and ds.manifest.get("license") != given:
        ds.manifest["license"] = given
        write_file(ds.root, "manifest.json", json.dumps(ds.manifest, indent=2, sort_keys=True).encode("utf-8"))
    return readme
