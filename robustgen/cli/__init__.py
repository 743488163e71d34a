"""The ``robustgen`` command line: a thin layer over the public Python API, one module per command group (their
order here is the order of ``robustgen --help``)."""

from __future__ import annotations

# isort: off
from robustgen.cli import synth, dataset, view, evaluation, degrade, catalog, train  # noqa: F401  (they register commands)

# isort: on
from robustgen.cli.common import app, main

__all__ = ["app", "main"]
