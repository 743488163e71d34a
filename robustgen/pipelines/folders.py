"""What an output folder holds, and the rule every command that writes a run or report folder follows: it writes
only into an empty folder, or one it made itself for the same job; never into a dataset, another command's folder
or a folder of files robustgen did not write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robustgen.errors import RobustgenError
from robustgen.pipelines.output import LOCK_FILE
from robustgen.schemas.paths import write_file

#: the note a command leaves in a folder it made: which command, and what identifies its job
KIND_FILE = ".work/kind.json"

_KIND_WORDS = {
    "dataset": "a robustgen dataset",
    "eval": "an eval run",
    "eval-report": "an eval-report folder",
}


def describe(kind: str) -> str:
    """A folder kind in words: 'a robustgen dataset', 'an eval run', ..."""
    return _KIND_WORDS.get(kind, "files robustgen did not write")


def in_dataset(folder: Path) -> Path | None:
    """The robustgen dataset ``folder`` is, or lies inside (its images/, data/, ...), or None."""
    for here in [folder.resolve(), *folder.resolve().parents]:
        if (here / "manifest.json").is_file() and (here / "data").is_dir():
            return here
    return None


def holds(folder: Path) -> str | None:
    """What ``folder`` holds: a kind from ``_KIND_WORDS``, ``"other"`` (files robustgen did not write), or None
    (absent or empty)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return "other"
    note = _note(folder)
    if note is not None:
        return str(note.get("kind"))
    if (folder / "manifest.json").is_file():
        return "dataset"
    if (folder / ".work" / "run.json").is_file():
        return "eval"  # an eval run from before kind notes
    if (folder / "predictions").is_dir() and _report_json(folder) and not (folder / ".work").exists():
        return "eval-report"  # an eval-report folder from before kind notes: predictions/ and its report.json
    return "other" if any(p.name != LOCK_FILE for p in folder.iterdir()) else None


def claim(folder: Path, kind: str, identity: dict[str, Any] | None = None) -> None:
    """Make ``folder`` this command's (``kind``), or ``RobustgenError`` (``check_claim``)."""
    check_claim(folder, kind, identity)
    note = {"kind": kind, "identity": identity}
    write_file(folder, KIND_FILE, (json.dumps(note, sort_keys=True) + "\n").encode("utf-8"))


def check_claim(folder: Path, kind: str, identity: dict[str, Any] | None = None) -> None:
    """``RobustgenError`` when ``folder`` holds something else than this command's (``kind``) own folder for this
    job: a dataset, another command's folder, the same command's folder for another job (``identity`` differs),
    or files robustgen did not write. Writes nothing."""
    found = holds(folder)
    if found is not None:
        what = describe(found)
        if found != kind:
            raise RobustgenError(f"--out {folder}: holds {what}; choose an empty folder or a new one")
        note = _note(folder) or {}
        old = note.get("identity")
        if identity is not None and old is not None and old != identity:
            diff = sorted(k for k in set(identity) | set(old) if identity.get(k) != old.get(k))
            raise RobustgenError(
                f"--out {folder}: holds {what} of other inputs ({', '.join(diff)}); choose another folder"
            )


def _report_json(folder: Path) -> bool:
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(report, dict) and isinstance(report.get("levels"), dict)


def _note(folder: Path) -> dict[str, Any] | None:
    try:
        note = json.loads((folder / KIND_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None
