"""Third-party components found through entry points (degraders, teachers): one loader for every group."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import entry_points

#: the entry-point groups whose plugins change what a run writes
GROUPS = ("robustgen.degraders", "robustgen.teachers", "robustgen.sources")

log = logging.getLogger("robustgen")


def load_entry_points(group: str) -> Iterator[tuple[str, object]]:
    """(entry-point name, loaded object) for each plugin in ``group``; one that fails to import is logged and
    skipped, so a broken plugin never takes the built-ins down."""
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
        except Exception as exc:
            log.warning("robustgen: plugin %r (%s) failed to load: %s", ep.name, group, exc)
            continue
        yield ep.name, obj


def installed_plugins() -> list[dict[str, str]]:
    """The distributions that provide robustgen plugins (degraders, teachers), with their versions and what they
    provide (``group:name``), sorted: what a manifest records, and what a resume must find again."""
    found: dict[tuple[str, str], list[str]] = {}
    for group in GROUPS:
        for ep in entry_points(group=group):
            dist = getattr(ep, "dist", None)
            key = (dist.metadata["Name"] if dist else "?", dist.version if dist else "?")
            found.setdefault(key, []).append(f"{group.rsplit('.', 1)[1]}:{ep.name}")
    return [{"name": n, "version": v, "provides": ", ".join(sorted(p))} for (n, v), p in sorted(found.items())]
