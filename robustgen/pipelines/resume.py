"""A run's identity in its output folder: start, resume or refuse, and what an earlier run already did."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.fs as pafs

from robustgen.errors import RobustgenError
from robustgen.pipelines.config import SynthConfig
from robustgen.pipelines.output import RUN_FILE, WORK_DIR, Output
from robustgen.pipelines.sources import IMAGE_SUFFIXES

#: read failures are written here by the scan (and simply read again by the next run)
READ_FAILURES = f"{WORK_DIR}/failures/read.jsonl"


def source_digest(source: str) -> str:
    """What the source holds, so that a changed file at the same path is not resumed into: the SHA-256 of a
    file's bytes; for a folder, of every image file's relative path, size and modification time."""
    if source == "samples":
        return "samples"
    path = Path(source)
    h = hashlib.sha256()
    try:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    st = f.lstat()
                    h.update(
                        f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape")
                    )
        elif path.is_file():
            with path.open("rb") as fh:
                h = hashlib.file_digest(fh, "sha256")
        else:
            return "missing"
    except OSError as exc:
        raise RobustgenError(f"{source}: cannot be read ({exc.strerror})") from None
    return h.hexdigest()


def ids_in(out: Output, rel: str) -> set[str]:
    ids: set[str] = set()
    for shard in out.list(rel, ".jsonl"):  # only the id is read: a record is validated when it is written
        for line in out.read_lines(shard):
            if line.strip():
                try:
                    ids.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError):
                    continue
    return ids


def check_overlap(cfg: SynthConfig, out: Output) -> None:
    """The output folder and the source never overlap: a run must not delete its source (``--overwrite``) or
    read its own output as input on the next run."""
    if cfg.source == "samples" or not isinstance(out.fs, pafs.LocalFileSystem):
        return
    src, dst = Path(cfg.source).resolve(), Path(out.root)
    if src.is_relative_to(dst):
        raise RobustgenError(f"--out {cfg.out} holds the source {cfg.source}; choose an output folder outside it")
    if src.is_dir() and dst.is_relative_to(src):
        raise RobustgenError(f"--out {cfg.out} lies inside the source folder {cfg.source}; choose a folder outside")


def prepare_output(cfg: SynthConfig, out: Output) -> None:
    """Start, resume, or refuse: a folder holding a run with other settings is never mixed into, and
    ``--overwrite`` only ever clears a folder that holds a robustgen run."""
    check_overlap(cfg, out)
    fp = cfg.fingerprint()
    fp["source_digest"] = source_digest(cfg.source)
    if not out.is_empty() and not out.exists(RUN_FILE):
        raise RobustgenError(
            f"{cfg.out}: folder is not empty and holds no robustgen run; robustgen never clears or mixes into "
            "other files: choose another --out"
        )
    if cfg.overwrite:
        out.clear()
    elif not out.is_empty():
        try:
            old = json.loads(out.read_text(RUN_FILE))
            if not isinstance(old, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            raise RobustgenError(f"{cfg.out}/{RUN_FILE}: damaged; use --overwrite to start over") from None
        old.setdefault("source_digest", fp["source_digest"])  # runs from before digests resume as before
        diff = sorted(k for k in set(fp) | set(old) if fp.get(k) != old.get(k))
        if "plugins" in diff:
            now = {f"{p['name']} {p['version']}" for p in fp.get("plugins") or []}
            then = {f"{p['name']} {p['version']}" for p in old.get("plugins") or []}
            change = [f"+{x}" for x in sorted(now - then)] + [f"-{x}" for x in sorted(then - now)]
            raise RobustgenError(
                f"{cfg.out}: was built with other robustgen plugins ({', '.join(change)} since); a plugin can change "
                "every record: install the same plugins, or use --overwrite or another --out"
            )
        if diff:
            raise RobustgenError(
                f"{cfg.out}: holds a run with different settings ({', '.join(diff)}); use "
                "--overwrite to start over or choose another --out"
            )
    out.mkdirs(WORK_DIR)
    out.write_text(RUN_FILE, json.dumps(fp, indent=2, sort_keys=True))
    out.clean_temporaries()


def ids_in_read(out: Output) -> set[str]:
    rel = READ_FAILURES
    if not out.exists(rel):
        return set()
    return {json.loads(line)["id"] for line in out.read_lines(rel)}
