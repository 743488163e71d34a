"""Recipes that know the registry: loading with name checks, and sampling plans."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError, model_validator

from robustgen.degrade import registry
from robustgen.degrade.apply import check_severity, plan_one
from robustgen.degrade.base import Degrader
from robustgen.degrade.seeding import generator
from robustgen.errors import RecipeError, did_you_mean
from robustgen.schemas import PAPER_ORDER, PHYSICAL_ORDER, AppliedDegradation, DegradationPlan
from robustgen.schemas import Recipe as RecipeSchema
from robustgen.schemas.recipe import VisibilityFloor


def parse_spec(spec: str, default_severity: float = 0.5) -> tuple[str, float]:
    """``"motion_blur=0.7"`` -> ("motion_blur", 0.7); a bare name gets ``default_severity``."""
    name, sep, sev = spec.partition("=")
    name = name.strip()
    registry.get(name)
    if not sep:
        return name, default_severity
    try:
        value = float(sev)
    except ValueError:
        raise RecipeError(f"--degrader {spec!r}: severity {sev!r} is not a number") from None
    return name, check_severity(value, f"--degrader {spec!r}")


def fixed_plan(specs: list[tuple[str, float]], seed: int, sample_id: str) -> DegradationPlan:
    """A plan with exactly these (name, severity) pairs in this order; params drawn from (seed, sample_id)."""
    rng = generator(seed, f"sample:{sample_id}")
    records = [plan_one(registry.get(name), severity, rng) for name, severity in specs]
    return DegradationPlan(sample_id=sample_id, seed=seed, degradations=records)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Recipe(RecipeSchema):
    """A recipe whose degrader names are checked against the registry, and that samples plans.

    >>> plan = Recipe(degraders=["motion_blur", "compression"]).sample(seed=0, sample_id="img-1")
    """

    @model_validator(mode="after")
    def _known_names(self) -> Recipe:
        known = set(registry.names())
        fields = {
            "degraders": self.degraders or [],
            "exclude": self.exclude,
            "degrader_weights": list(self.degrader_weights),
        }
        for field, names in fields.items():
            for i, name in enumerate(names):
                if name not in known:
                    where = f"{field}[{i}]" if field != "degrader_weights" else f"{field}.{name}"
                    raise ValueError(f"{where}: {registry.unknown_message(name)}")
        if not self.candidates():
            raise ValueError("no degrader left to draw (check degraders, exclude and weights)")
        if self.calibration is not None:
            if not self.calibrated:
                raise ValueError("calibration: a table is only used with calibrated: true")
            from robustgen.degrade.calibration import table_sha256

            sha = table_sha256(self.calibration)  # a readable calibration table, or ValueError naming the file
            if self.calibration_sha256 not in (None, sha):
                raise ValueError(f"calibration: {self.calibration} is not the table this recipe was made with")
            object.__setattr__(self, "calibration_sha256", sha)
        return self

    def calibration_table(self) -> dict:
        """The table ``calibrated: true`` maps severities with: the recipe's own (``calibration``) or the shipped
        one."""
        from robustgen.degrade.calibration import load_table, shipped_table

        return shipped_table() if self.calibration is None else load_table(self.calibration, self.calibration_sha256)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Load a recipe from YAML or JSON, or a preset by name (``robustgen recipes``); ``RecipeError`` names the
        file and the field."""
        if not Path(path).exists() and str(path) in presets():
            path = _preset_path(str(path))
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            hint = did_you_mean(str(path), presets()) if not path.exists() else ""
            raise RecipeError(f"{path}: cannot read recipe ({exc.strerror or exc}){hint}") from None
        except UnicodeDecodeError:
            raise RecipeError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
            first = (str(exc).strip().splitlines() or ["nested too deeply"])[0]
            if isinstance(exc, RecursionError):
                first = "nested too deeply"
            raise RecipeError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {first}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of keys, got {type(data).__name__}")
        table = data.get("calibration")
        if isinstance(table, str) and table and not Path(table).is_absolute():
            data = {**data, "calibration": str((path.parent / table).resolve())}  # relative to the recipe file
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> Recipe:
        try:
            recipe = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(RecipeSchema.model_fields)
                msg = f"unknown key (allowed: {allowed})"
            where = _loc(err["loc"])
            raise RecipeError(f"{source}: {where}: {msg}" if where else f"{source}: {msg}") from None
        try:  # a recipe that validates but cannot draw a plan is refused here, not as a failure of every row
            recipe.sample(seed=0, sample_id="recipe-check")
        except (ValueError, ArithmeticError) as exc:
            raise RecipeError(f"{source}: cannot draw a plan from this recipe ({exc})") from None
        return recipe

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON data; settings added later are left out while unset, so a run recorded before them
        resumes as before."""
        unset = {k for k in ("calibration", "calibration_sha256") if getattr(self, k) is None}
        if self.visibility == VisibilityFloor():
            unset.add("visibility")  # the default floor: synth's fingerprint and manifest name it themselves
        return self.model_dump(mode="json", exclude=unset)

    def candidates(self) -> list[Degrader]:
        allowed = set(self.degraders) if self.degraders is not None else None
        out = []
        for d in registry.degraders():
            if allowed is not None and d.name not in allowed:
                continue
            if d.name in self.exclude or (self.exclude_geometric and d.geometric):
                continue
            if self.degrader_weights.get(d.name, 1.0) <= 0 or self.stage_weights.get(d.stage, 1.0) <= 0:
                continue
            out.append(d)
        return out

    def _severity(self, rng: np.random.Generator) -> float:
        dist = self.severity
        if dist.kind == "levels":
            return float(dist.levels[int(rng.integers(0, len(dist.levels)))])
        u = float(rng.random()) if dist.kind == "uniform" else float(rng.beta(dist.a, dist.b))
        return round(dist.low + (dist.high - dist.low) * u, 6) or dist.low

    def sample(self, seed: int, sample_id: str) -> DegradationPlan:
        """The plan for one sample; a pure function of (recipe, seed, sample_id).

        A clean control (``clean_fraction``) has no degradation at all. With ``passes`` > 1 the draw is repeated
        with independent parameters and the passes applied one after another (second-order degradation, as in
        Real-ESRGAN); every application is a record of its own, in order."""
        if self.clean_fraction > 0 and generator(seed, f"clean:{sample_id}").random() < self.clean_fraction:
            return DegradationPlan(sample_id=sample_id, seed=seed, degradations=[])
        records: list[AppliedDegradation] = []
        for k in range(self.passes):  # pass 0 draws from the stream a one-pass recipe always used
            rng = generator(seed, f"sample:{sample_id}" if k == 0 else f"sample:{sample_id}:pass{k}")
            records += self._one_pass(rng)
        return DegradationPlan(sample_id=sample_id, seed=seed, degradations=records)

    def _one_pass(self, rng: np.random.Generator) -> list[AppliedDegradation]:
        pool = self.candidates()
        n = int(rng.integers(self.per_image.min, self.per_image.max + 1))
        chosen: list[Degrader] = []
        while len(chosen) < n and pool:
            stages = sorted({d.stage for d in pool}, key=registry.STAGE_RANK.__getitem__)
            sw = np.array([self.stage_weights.get(s, 1.0) for s in stages], dtype=np.float64)
            stage = stages[int(rng.choice(len(stages), p=sw / sw.sum()))]
            in_stage = [d for d in pool if d.stage is stage]
            dw = np.array([self.degrader_weights.get(d.name, 1.0) for d in in_stage], dtype=np.float64)
            pick = in_stage[int(rng.choice(len(in_stage), p=dw / dw.sum()))]
            chosen.append(pick)
            if not self.repeat:
                pool = [d for d in pool if d is not pick]
            if self.one_per_stage:
                pool = [d for d in pool if d.stage is not stage]
        if self.order == "random":
            chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        else:
            order = PHYSICAL_ORDER if self.order == "physical" else PAPER_ORDER
            chosen.sort(key=lambda d: order.index(d.stage))  # stable: draw order within a stage
        severities = [self._severity(rng) for _ in chosen]
        if self.calibrated:
            from robustgen.degrade.calibration import calibrated_severity

            table = self.calibration_table()
            own = [calibrated_severity(table, d.name, s) for d, s in zip(chosen, severities, strict=True)]
            # the record's severity is the degrader's (on its lifted scale, as the table measured it): replay and
            # the floor use it; the drawn (perceptual) severity is what TYPE states
            return [
                plan_one(d, o, rng).model_copy(update={"shown_severity": s})
                for d, o, s in zip(chosen, own, severities, strict=True)
            ]
        return [plan_one(d, s, rng) for d, s in zip(chosen, severities, strict=True)]


def _preset_path(name: str) -> Path:
    return Path(str(files("robustgen.degrade").joinpath("presets", f"{name}.yaml")))


def presets() -> dict[str, str]:
    """The recipes shipped with the package: name -> one-line description."""
    out = {}
    for entry in sorted(files("robustgen.degrade").joinpath("presets").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
            out[entry.name[: -len(".yaml")]] = str(data.get("description", ""))
    return out
