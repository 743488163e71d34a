"""The output folder of a run, on any pyarrow filesystem (local paths, file:// URIs, s3://, ...).

Writes are atomic (temporary name, then move) so a killed run never leaves a torn file behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

from robustgen.errors import RobustgenError

DATA_DIR, IMAGES_DIR, WORK_DIR = "data", "images", ".work"
MANIFEST, FAILURES, RUN_FILE = "manifest.json", "failures.jsonl", ".work/run.json"
LOCK_FILE = ".robustgen-lock"  # who holds the folder (pid, host, since); the lock itself is a flock


_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}")


def safe_name(sample_id: str) -> str:
    """A file name for a sample id, one-to-one: a plain id (letters, digits, ``._-``, not starting with a dot,
    at most 120 characters) is kept as it is; any other id is escaped (``%XX`` per UTF-8 byte, so ``%`` itself
    never appears in a plain name) and, when long, cut and given the SHA-256 of the whole id. Two different ids
    never share a file."""
    if _PLAIN.fullmatch(sample_id):
        return sample_id
    raw = sample_id.encode("utf-8", "surrogatepass")
    escaped = "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-") else f"%{b:02X}" for b in raw)
    if len(escaped) > 120:
        escaped = f"{escaped[:56]}%{hashlib.sha256(raw).hexdigest()}"
    return escaped


def image_relpath(sample_id: str, ext: str, k: int = 1) -> str:
    """images/<2 hex>/<safe id>.<ext>: a fan-out keeps folders small on million-sample runs. The ``k``-th image
    of a multi-image sample (k >= 2) is ``<safe id>~<k>.<ext>``: ``~`` never occurs in a safe name, so no other
    sample's file can be named so."""
    bucket = hashlib.sha1(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:2]
    tail = "" if k == 1 else f"~{k}"
    return f"{IMAGES_DIR}/{bucket}/{safe_name(sample_id)}{tail}.{ext}"


class Output:
    """A run folder. ``uri`` is a local path or any URI pyarrow understands."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(uri).resolve())
        self.root = self.root.rstrip("/")
        self._made: set[str] = set()  # folders known to exist (one mkdir per folder, not per file)

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    @property
    def local(self) -> bool:
        """A folder on this machine's disk: processes can claim chunks in it with an exclusive create (object stores
        cannot)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def exists(self, rel: str = "") -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def is_empty(self) -> bool:
        return not self._entries()

    def _entries(self) -> list[str]:
        """Paths of what the folder holds (the lock note excluded)."""
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=False))
        return [i.path for i in infos if i.path.rsplit("/", 1)[-1] != LOCK_FILE]

    def mkdirs(self, rel: str = "") -> None:
        self.fs.create_dir(self.path(rel), recursive=True)

    def write_bytes(self, rel: str, data: bytes, atomic: bool = True) -> None:
        """Write a file whole. ``atomic``: under a temporary name, then moved (never seen torn). Images are
        written in place (``atomic=False``): the data shard that names them, written atomically after them, is
        the commit point, and a re-run rewrites the image of any sample that has no shard yet."""
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0]
        if parent not in self._made:
            self.fs.create_dir(parent, recursive=True)
            self._made.add(parent)
        if not atomic or not isinstance(self.fs, pafs.LocalFileSystem):
            # an object store writes an object whole or not at all: no temporary name, no rename
            with self.fs.open_output_stream(final) as f:
                f.write(data)
            return
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, final)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def read_text(self, rel: str) -> str:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read().decode("utf-8")

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def read_lines(self, rel: str) -> list[str]:
        """The non-blank lines of the JSONL file ``rel``, split at ``\\n`` only: JSON leaves U+2028, U+0085 and the
        like unescaped inside strings, and ``str.splitlines`` would cut a record there."""
        return [line for line in self.read_text(rel).split("\n") if line.strip()]

    def list(self, rel: str, suffix: str = "", recursive: bool = False) -> list[str]:
        """Relative paths of the files under ``rel`` ending in ``suffix`` (temporary files excluded)."""
        base = self.path(rel)
        if self.fs.get_file_info(base).type == pafs.FileType.NotFound:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=recursive))
        out = []
        for info in infos:
            name = info.path.rsplit("/", 1)[-1]
            if info.type == pafs.FileType.File and name.endswith(suffix) and not name.startswith(".tmp-"):
                out.append(info.path[len(self.root) + 1 :])
        return sorted(out)

    def delete(self, rel: str) -> None:
        self._made.clear()
        info = self.fs.get_file_info(self.path(rel))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(rel))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path(rel))

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run folder for this process: a second ``synth`` into the same local folder is refused with a
        one-line error instead of interleaving with the first. (Object stores have no lock: one writer there.)"""
        if not isinstance(self.fs, pafs.LocalFileSystem):
            yield
            return
        os.makedirs(self.root, exist_ok=True)
        # the folder itself is locked (--overwrite empties it but never removes it). The kernel drops a flock
        # when its process dies, however it dies: a killed run leaves no stale lock to clean up.
        fd = os.open(self.root, os.O_RDONLY)
        note = Path(self.root) / LOCK_FILE
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RobustgenError(
                    f"{self.uri}: another robustgen run is writing into this folder ({_holder(note)}); wait for it "
                    "to finish or choose another --out"
                ) from None
            note.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}) + "\n")
            try:
                yield
            finally:
                note.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Remove everything in the run folder (``--overwrite``) but the lock note of the run doing it."""
        self._made.clear()
        for path in self._entries():
            if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                self.fs.delete_dir(path)
            else:
                self.fs.delete_file(path)

    def clean_temporaries(self) -> None:
        """Remove temporary files a killed run left behind."""
        for rel in self._all():
            if rel.rsplit("/", 1)[-1].startswith(".tmp-"):
                self.delete(rel)

    def _all(self) -> list[str]:
        if not self.exists():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        return [i.path[len(self.root) + 1 :] for i in infos if i.type == pafs.FileType.File]


def _holder(note: Path) -> str:
    """Who holds a folder, from its lock note: 'pid 123 on host-a since 12:03:04'."""
    try:
        info = json.loads(note.read_text(encoding="utf-8"))
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {str(info['host'])[:64]} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def shard_name(ids: list[str], prefix: str) -> str:
    """A deterministic shard name for a batch of sample ids."""
    digest = hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    return f"{prefix}-{digest}.jsonl"
