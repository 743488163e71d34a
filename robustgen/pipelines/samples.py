"""The built-in sample set: the colour photos scikit-image ships, with hand-written questions."""

from __future__ import annotations

import json
from importlib.resources import files

from robustgen.schemas import SourceRow


def load_samples() -> list[SourceRow]:
    """Every built-in sample, in a stable order."""
    rows = json.loads(files("robustgen.pipelines").joinpath("samples.json").read_text(encoding="utf-8"))
    return [SourceRow(**row, source=f"samples.json[{i}]") for i, row in enumerate(rows)]
