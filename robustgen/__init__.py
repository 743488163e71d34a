"""robustgen: degradation-aware reasoning datasets for vision-language models.

import robustgen as rg
out, rec = rg.degrade(image, "motion_blur", severity=0.5, seed=0)
assert (rg.replay(image, [rec]) == out).all()
"""

from robustgen.degrade import (
    Degrader,
    Recipe,
    StrictParams,
    apply_plan,
    degrade,
    degraders,
    read_image,
    register,
    replay,
    to_rgb_uint8,
    write_image,
)
from robustgen.errors import ImageError, RecipeError, RobustgenError, UnknownDegraderError
from robustgen.schemas import AppliedDegradation, DegradationPlan, Stage

__version__ = "0.1.0"

__all__ = [
    "AppliedDegradation",
    "DegradationPlan",
    "Degrader",
    "ImageError",
    "Recipe",
    "RecipeError",
    "RobustgenError",
    "Stage",
    "StrictParams",
    "UnknownDegraderError",
    "__version__",
    "apply_plan",
    "degrade",
    "degraders",
    "read_image",
    "register",
    "replay",
    "to_rgb_uint8",
    "write_image",
]
