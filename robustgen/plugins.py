"""Third-party components found through entry points (degraders, teachers): one loader for every group."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import entry_points

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
