"""The degrader contract: one class per effect, params drawn apart from pure pixel maths."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from robustgen.schemas import Stage


class StrictParams(BaseModel):
    """Base for degrader params: unknown keys rejected, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Degrader(ABC):
    """One degradation type.

    Subclasses set ``name`` (stable snake_case id), ``label`` (TYPE-tag words), ``stage``,
    ``influence`` (what it does to what can be seen), a ``Params`` model whose field descriptions
    give units, and implement ``params_for`` and ``apply``.

    Contract:
    - ``params_for(severity, rng)`` maps severity in (0, 1] to concrete params, monotone in severity (the
      degrader's own scale: ``plan_one`` first lifts a drawn severity past ``visible_from``).
      It must draw the same number of values from ``rng`` whatever the severity, so that one seed
      gives the same layout (angles, positions) at every severity and only the strength changes.
    - ``apply(image, params, rng)`` is a pure function: uint8 RGB (H, W, 3) in, same shape out.
      Any noise field comes from ``rng`` only.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    stage: ClassVar[Stage]
    influence: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    #: moves pixels (rotation, warps, shifts): recipes can leave these out for questions about positions or text
    geometric: ClassVar[bool] = False
    #: where the severity scale starts on the degrader's own: severity s is drawn as ``visible_from + (1 -
    #: visible_from) * s`` by ``params_for``'s caller (``apply.plan_one``), so that a low severity still shows on most
    #: photos (the shipped values: where the own severity that hides on at most 1 in 5 reference photos, at 256, 512
    #: and 1024 px, lands at severity 0.1). 0 for a degrader whose mildest draw already shows.
    visible_from: ClassVar[float] = 0.0

    @abstractmethod
    def params_for(self, severity: float, rng: np.random.Generator) -> BaseModel:
        """Concrete params for a severity in (0, 1]."""

    @abstractmethod
    def apply(self, image: np.ndarray, params: BaseModel, rng: np.random.Generator) -> np.ndarray:
        """Degrade ``image`` (uint8 RGB, HxWx3) with ``params``; same size and dtype out."""

    def params_schema(self) -> dict:
        """JSON schema of the params, with units in the field descriptions."""
        return self.Params.model_json_schema()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.stage.value})>"
