"""Path safety, the one rule every reader and writer follows: a path named by data (a row's image, a record's
image, a sample id made a file name) stays inside the folder it belongs to, after resolving symlinks, and a
file read is a regular file (never a FIFO, device or folder)."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


def resolve_under(root: str | Path, ref: str) -> Path:
    """``ref`` (relative to ``root``, or absolute) resolved with symlinks followed; ``ValueError`` when the result
    lies outside ``root`` (``../``, an absolute path elsewhere, a symlink pointing out)."""
    if "\x00" in ref:
        raise ValueError(f"path {ref!r} holds a NUL byte")
    base = Path(root).resolve()
    p = Path(ref)
    full = (p if p.is_absolute() else base / p).resolve()
    if not full.is_relative_to(base):
        raise ValueError(f"path {ref!r} escapes its folder {base}")
    return full


def regular_file_under(root: str | Path, ref: str) -> Path:
    """``resolve_under`` plus: the path is an existing regular file."""
    full = resolve_under(root, ref)
    try:
        mode = os.stat(full).st_mode
    except FileNotFoundError:
        raise ValueError(f"{ref} is missing") from None
    except OSError as exc:
        raise ValueError(f"{ref}: {exc.strerror or 'cannot be read'}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{ref}: not a regular file")
    return full


def check_relative(ref: str) -> str:
    """A path a record may hold: relative, POSIX, no ``..`` part, no backslash or NUL. Returns it unchanged."""
    if not ref or "\x00" in ref or "\\" in ref:
        raise ValueError(f"{ref!r} is not a plain relative path")
    p = PurePosixPath(ref)
    if p.is_absolute() or ".." in p.parts or ref.startswith("~"):
        raise ValueError(f"{ref!r} must stay inside the dataset folder (relative, no '..')")
    return ref
