"""The teacher registry: built-ins and third-party ``robustgen.teachers`` entry points, alike."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from robustgen.annotate.base import Teacher
from robustgen.errors import RobustgenError
from robustgen.plugins import load_entry_points

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "robustgen.teachers"
_BUILTIN_MODULES = ("robustgen.annotate.template", "robustgen.annotate.openai_teacher")
_registry: dict[str, type[Teacher]] = {}
_loaded = False


class UnknownTeacherError(RobustgenError):
    """A teacher name that is not registered."""


def register_teacher(cls: type[Teacher]) -> type[Teacher]:
    """Class decorator: register a ``Teacher`` subclass under ``cls.name``."""
    if not (inspect.isclass(cls) and issubclass(cls, Teacher)) or inspect.isabstract(cls):
        raise TypeError(f"{cls!r} is not a concrete robustgen Teacher subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"teacher {cls.__name__} lacks a name")
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        raise TypeError(f"teacher name {name!r} is already registered by {existing.__name__}")
    _registry[name] = cls
    return cls


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    for name, cls in load_entry_points(ENTRY_POINT_GROUP):
        try:
            register_teacher(cls)  # type: ignore[arg-type]
        except TypeError as exc:
            log.warning("robustgen: teacher plugin %r: %s", name, exc)


def teacher_names() -> list[str]:
    _ensure_loaded()
    return sorted(_registry)


def teacher_class(name: str) -> type[Teacher]:
    """The teacher registered as ``name``; a one-line error with suggestions otherwise."""
    _ensure_loaded()
    try:
        return _registry[name]
    except KeyError:
        known = sorted(_registry)
        close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownTeacherError(f"--teacher {name!r}: unknown teacher{hint} (valid: {', '.join(known)})") from None


def parse_sets(sets: list[str], option: str = "--teacher-set") -> dict[str, Any]:
    """``key=value`` strings (``--teacher-set``, ``--judge-set``, ``--eval-set``) to a dict; values are YAML scalars
    (``8``, ``true``, ``0.5``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise RobustgenError(f"{option} {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def teacher_config(
    name: str, config_file: str | Path | None = None, settings: dict[str, Any] | None = None
) -> BaseModel:
    """The teacher's own config from an optional YAML/JSON file, then ``settings`` on top (None values are
    ignored), validated by the teacher's ``Config``; one-line errors naming the file and the field."""
    import yaml

    cls = teacher_class(name)
    data: dict[str, Any] = {}
    where = f"--teacher {name}"
    if config_file:
        where = str(config_file)
        try:
            data = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RobustgenError(f"{config_file}: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise RobustgenError(f"{config_file}: expected a mapping of {name} teacher settings")
    data.update({k: v for k, v in (settings or {}).items() if v is not None})
    try:
        return cls.Config(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        fields = ", ".join(cls.Config.model_fields) or f"none: the {name} teacher takes no settings"
        valid = f" (valid: {fields})" if err["type"] == "extra_forbidden" else ""
        raise RobustgenError(f"{where}: teacher setting {field!r}: {err['msg']}{valid}") from None


def make_teacher(
    name: str, config: BaseModel | dict[str, Any] | None = None, *, cache_dir: str | None = None, seed: int = 0
) -> Teacher:
    """An instance of the teacher ``name`` with ``config`` (a dict is validated first)."""
    cls = teacher_class(name)
    if config is None or isinstance(config, dict):
        config = teacher_config(name, settings=config or {})
    return cls(config, cache_dir=cache_dir, seed=seed)
