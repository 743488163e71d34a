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


def lexically_under(ref: str, root: Path) -> bool:
    """``ref`` (absolute) names a path below ``root`` as written: ``..`` folded, nothing on disk looked at (so
    nothing is learnt about outside files), and no hidden part below ``root`` (``.ssh``, ``.env``)."""
    if not ref or "\x00" in ref or not Path(ref).is_absolute():
        return False
    full = Path(os.path.normpath(ref))
    if not full.is_relative_to(root):
        return False
    return not any(part.startswith(".") for part in full.relative_to(root).parts)


def check_relative(ref: str) -> str:
    """A path a record may hold: relative, POSIX, no ``..`` part, no backslash or NUL. Returns it unchanged."""
    if not ref or "\x00" in ref or "\\" in ref:
        raise ValueError(f"{ref!r} is not a plain relative path")
    p = PurePosixPath(ref)
    if p.is_absolute() or ".." in p.parts or ref.startswith("~"):
        raise ValueError(f"{ref!r} must stay inside the dataset folder (relative, no '..')")
    return ref


def plain_file_under(root: str | Path, ref: str) -> Path:
    """``regular_file_under`` plus: no part of the path below ``root`` is a symbolic link (a file a dataset holds
    is its own bytes, never a link to something else, even inside the folder). Returns the path below ``root``."""
    check_relative(ref)
    base = Path(root)
    here = base
    for part in PurePosixPath(ref).parts:
        here = here / part
        if here.is_symlink():
            link = here.relative_to(base).as_posix()
            raise ValueError(f"{ref}: a symbolic link" + ("" if link == ref else f" (its folder {link})"))
    regular_file_under(base, ref)
    return here


def write_file(root: str | Path, rel: str, data: bytes) -> Path:
    """Write ``data`` to ``root/rel`` atomically (a temporary file beside it, then a rename), never through a
    symlink: a link planted at ``rel`` is replaced, not followed, and a folder on the way that leads outside
    ``root`` is refused (``ValueError``)."""
    import tempfile

    check_relative(rel)
    target = Path(root) / rel
    resolve_under(root, str(PurePosixPath(rel).parent))  # the folder it goes into stays inside root
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)  # replaces a symlink at target itself, never the file it points to
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
