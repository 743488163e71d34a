"""Keep robustgen's processes lean: albumentations (used for a few pixel functions) imports its torch adapter
and checks PyPI for a newer version on import. In robustgen's own processes (the CLI and Ray workers) neither
is wanted: torch costs ~1 s per process when installed, and the version check is a network connection from
every command. Importing this module (before albumentations is first imported) applies it; only the CLI and the
job module do, so a library user's own process is left alone."""

from __future__ import annotations

import os
import sys


def lean_imports() -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if "albumentations" not in sys.modules:
        # a None entry makes `import albumentations.pytorch` raise ImportError, which albumentations suppresses
        sys.modules.setdefault("albumentations.pytorch", None)  # type: ignore[arg-type]


lean_imports()
