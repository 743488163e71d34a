"""A robustness report from VLMEvalKit's own prediction files for the ``_Robust_`` sets, without re-running a
model: each file's rows are scored the way VLMEvalKit scores multiple choice, joined to the exact degradations
of the corrupt-eval manifest the sets were built from."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from robustgen.errors import RobustgenError
from robustgen.eval.extract import LETTERS, extract_choice
from robustgen.eval.report import CLEAN
from robustgen.pipelines.corrupt import read_manifest
from robustgen.pipelines.folders import claim
from robustgen.schemas.paths import write_file


def _table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".xlsx":
            return pd.read_excel(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except ImportError as exc:
        raise RobustgenError(f"{path}: reading .xlsx needs openpyxl: pip install 'robustgen[xlsx]' ({exc})") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # a zip that is no workbook, ...
        raise RobustgenError(f"{path}: not a readable prediction table ({' '.join(str(exc).split())[:200]})") from None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _level(path: Path) -> str:
    m = re.search(r"_Robust_(\d+)", path.stem)
    return m.group(1) if m else CLEAN


def predictions_from_vlmeval(files: list[Path], manifest: Path, out: Path) -> dict[str, int]:
    """Write ``out/predictions/LEVEL.jsonl`` from VLMEvalKit prediction files (``.xlsx``, ``.tsv`` or ``.csv``
    with ``index``, ``question``, options ``A``.., ``answer`` and ``prediction``); returns rows per level."""
    _, entries = read_manifest(manifest)
    claim(out, "eval-report", {"manifest": _sha256(manifest)})  # its own folder for this manifest, or a new one
    folder = out / "predictions"
    tables: dict[str, str] = {}
    counts: dict[str, int] = {}
    for path in files:
        level = _level(path)
        df = _table(path)
        missing = {"index", "answer", "prediction"} - set(df.columns)
        if missing:
            raise RobustgenError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        lines = []
        for rec in df.to_dict("records"):
            rid = str(rec["index"])
            choices = [str(rec[c]) for c in LETTERS[:10] if c in rec and _present(rec[c])]
            prediction = "" if not _present(rec["prediction"]) else str(rec["prediction"])
            answer = str(rec["answer"]).strip()
            idx = extract_choice(prediction, choices) if choices else None
            extracted = LETTERS[idx] if idx is not None else None
            entry = entries.get((rid, 0, int(level))) if level != CLEAN else None
            if level != CLEAN and entry is None:
                raise RobustgenError(f"{path}: row {rid} at level {level} is not in the manifest {manifest}")
            line: dict[str, Any] = {
                "id": rid,
                "level": level,
                "question": str(rec.get("question", "")),
                "choices": choices or None,
                "answer": answer,
                "prediction": prediction,
                "extracted": extracted,
                "correct": extracted is not None and extracted == answer.upper(),
                "degradations": (entry or {}).get("degradations") or [],
            }
            lines.append(json.dumps(line, ensure_ascii=False) + "\n")
        tables[level] = "".join(lines)
        counts[level] = len(lines)
    # every table read: only now are the last run's levels replaced (a failing re-run loses nothing)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jsonl"):
        old.unlink()
    for level, text in tables.items():
        write_file(folder, f"{level}.jsonl", text.encode("utf-8"))
    return counts


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and str(value).strip() != ""
