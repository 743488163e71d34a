"""robustgen: degradation-aware reasoning datasets for vision-language models.

    import robustgen as rg
    out, rec = rg.degrade_image(image, "motion_blur", severity=0.5, seed=0)
    assert (rg.replay(image, [rec]) == out).all()

``rg.degrade_image`` is the one-call API; ``robustgen.degrade`` is the subpackage (never shadowed). Names
are loaded lazily, so ``import robustgen.train`` or ``robustgen.schemas`` on a training box
pulls in neither OpenCV nor Ray.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# albumentations (used for a few pixel functions) would otherwise open a connection to PyPI on import
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

_LAZY = {
    "Degrader": "robustgen.degrade",
    "Recipe": "robustgen.degrade",
    "StrictParams": "robustgen.degrade",
    "apply_plan": "robustgen.degrade",
    "degrade_image": "robustgen.degrade",
    "degraders": "robustgen.degrade",
    "load_image": "robustgen.images",
    "read_image": "robustgen.degrade",
    "register": "robustgen.degrade",
    "replay": "robustgen.degrade",
    "to_rgb_uint8": "robustgen.degrade",
    "write_image": "robustgen.degrade",
    "ImageError": "robustgen.errors",
    "RecipeError": "robustgen.errors",
    "RobustgenError": "robustgen.errors",
    "UnknownDegraderError": "robustgen.errors",
    "AppliedDegradation": "robustgen.schemas",
    "DegradationPlan": "robustgen.schemas",
    "Stage": "robustgen.schemas",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in ("schemas", "degrade", "annotate", "pipelines", "train", "errors", "cli"):
            return importlib.import_module(f"robustgen.{name}")
        raise AttributeError(f"module 'robustgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
