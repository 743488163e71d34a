"""The degrader registry: built-ins plus third-party ``robustgen.degraders`` entry points."""

from __future__ import annotations

import importlib
import inspect
import logging
import numbers
import re
import threading

from robustgen.degrade.base import Degrader
from robustgen.errors import UnknownDegraderError, did_you_mean
from robustgen.plugins import load_entry_points
from robustgen.schemas import Stage

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "robustgen.degraders"
_BUILTIN_MODULES = ("acquisition", "transmission", "environment", "postprocessing")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_registry: dict[str, Degrader] = {}
_loaded = False
_load_lock = threading.RLock()  # reentrant: a plugin module may call the registry while it is imported
_ordered: list[Degrader] | None = None  # _registry in stage then name order; rebuilt after a registration
STAGE_RANK = {s: i for i, s in enumerate(Stage)}  # the stages' order, as a lookup


def register(cls: type[Degrader]) -> type[Degrader]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    for attr in ("name", "label", "stage", "influence", "Params"):
        if not hasattr(cls, attr):
            raise TypeError(f"degrader {cls.__name__} lacks the class attribute {attr!r}")
    if not _NAME_RE.match(cls.name):
        raise TypeError(f"degrader name {cls.name!r} must be snake_case")
    if not isinstance(cls.stage, Stage):
        raise TypeError(f"degrader {cls.name!r}: stage must be a robustgen.Stage")
    vf = cls.visible_from
    if isinstance(vf, bool) or not isinstance(vf, numbers.Real) or not 0.0 <= vf < 1.0:
        raise TypeError(f"degrader {cls.name!r}: visible_from must be a number in [0, 1), got {vf!r}")
    existing = _registry.get(cls.name)
    if existing is not None and type(existing) is not cls:
        raise TypeError(f"degrader name {cls.name!r} is already registered by {type(existing).__name__}")
    global _ordered
    _registry[cls.name] = cls()
    _ordered = None
    return cls


def _load_plugins() -> None:
    for ep_name, obj in load_entry_points(ENTRY_POINT_GROUP):
        classes = (
            [obj]
            if inspect.isclass(obj)
            else [
                v
                for v in vars(obj).values()
                if inspect.isclass(v)
                and issubclass(v, Degrader)
                and v.__module__ == obj.__name__
                and not inspect.isabstract(v)
            ]
        )
        for cls in classes:
            if not (inspect.isclass(cls) and issubclass(cls, Degrader)):
                log.warning("robustgen: plugin %r is not a Degrader subclass", ep_name)
                continue
            if cls.name not in _registry:
                register(cls)


def _ensure_loaded() -> None:
    """Import the built-ins and plugins once. The flag is set only after they are registered, under a lock: a
    second thread arriving meanwhile waits instead of seeing a half-filled registry."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        for mod in _BUILTIN_MODULES:
            importlib.import_module(f"robustgen.degrade.{mod}")
        _load_plugins()
        _loaded = True


def degraders(stage: Stage | str | None = None) -> list[Degrader]:
    """Registered degraders in stage order then name order, optionally one stage only."""
    global _ordered
    _ensure_loaded()
    if _ordered is None:  # every plan draws from this list: sorted once, not per sample
        _ordered = sorted(_registry.values(), key=lambda d: (STAGE_RANK[d.stage], d.name))
    items = list(_ordered)
    if stage is not None:
        stage = Stage(stage)
        items = [d for d in items if d.stage is stage]
    return items


def names() -> list[str]:
    return [d.name for d in degraders()]


def get(name: str) -> Degrader:
    """The degrader registered as ``name``; a clear error with suggestions otherwise."""
    _ensure_loaded()
    try:
        return _registry[name]
    except KeyError:
        raise UnknownDegraderError(unknown_message(name)) from None


#: names other tools (imagecorruptions, albumentations) use for a degrader, suggested when typed
ALIASES = {
    "jpeg": "compression",
    "jpeg_compression": "compression",
    "image_compression": "compression",
    "webp": "webp_compression",
    "gaussian_noise": "noise",
    "shot_noise": "sensor_noise",
    "gaussian_blur": "defocus_blur",
    "blur": "defocus_blur",
    "brightness": "overexposure",
    "contrast": "fog",
    "spatter": "dirty_lens",
    "pixelation": "pixelate",
    "gamma": "darkness",
}


def unknown_message(name: str) -> str:
    _ensure_loaded()
    known = sorted(_registry)
    labels = {d.label: n for n, d in _registry.items()} | ALIASES  # "jpeg" -> compression, "motion blur" -> ...
    return f"unknown degrader {name!r}{did_you_mean(name, known, labels)} (valid: {', '.join(known)})"
