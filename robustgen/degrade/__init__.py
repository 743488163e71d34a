"""Degraders, the registry, recipes -> plans, and applying/replaying plans."""

from robustgen.degrade.apply import apply_plan, degrade_image, replay
from robustgen.degrade.base import Degrader, StrictParams
from robustgen.degrade.recipes import Recipe
from robustgen.degrade.registry import ENTRY_POINT_GROUP, degraders, get, register
from robustgen.images import read_image, to_rgb_uint8, write_image

__all__ = [
    "ENTRY_POINT_GROUP",
    "Degrader",
    "Recipe",
    "StrictParams",
    "apply_plan",
    "degrade_image",
    "degraders",
    "get",
    "read_image",
    "register",
    "replay",
    "to_rgb_uint8",
    "write_image",
]
