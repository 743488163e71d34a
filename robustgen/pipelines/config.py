"""What one ``robustgen synth`` run depends on (``SynthConfig``) and what it reports (``SynthSummary``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from robustgen.annotate.base import Teacher
from robustgen.annotate.registry import make_teacher
from robustgen.degrade.recipes import Recipe
from robustgen.pipelines.output import WORK_DIR, Output
from robustgen.plugins import installed_plugins


class SynthConfig(BaseModel):
    """Everything one synth run depends on."""

    model_config = ConfigDict(extra="forbid")

    out: str
    source: str = "samples"
    format: str = "auto"
    recipe: dict[str, Any] = Field(default_factory=dict, description="recipe as a dict (validated by Recipe)")
    seed: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    teacher: str = Field(default="template", description="a registered teacher (built-in or plugin)")
    teacher_config: dict[str, Any] = Field(default_factory=dict, description="validated by the teacher's Config")
    workers: int = Field(default=2, ge=1)
    ray_address: str | None = None
    image_format: Literal["jpg", "png"] = "jpg"
    question: str | None = None
    coco_root: str | None = None
    split: str | None = None
    batch_size: int = Field(default=16, ge=1)
    overwrite: bool = False
    retry_failed: bool = Field(default=False, description="on resume, process earlier failures again")
    judge: dict[str, Any] | None = Field(default=None, description="judge settings (JudgeConfig); None = no judge")
    keep_clean: bool = Field(default=False, description="store each clean image too (content-addressed, lossless)")
    ssim: bool = Field(default=False, description="measure each sample's SSIM (always on for degradation-qa)")
    executor: Literal["auto", "in-process", "ray"] = Field(
        default="auto", description="where rows run: auto (decided from the run's size and --workers), or forced"
    )
    task: Literal["answer", "degradation-qa"] = Field(
        default="answer",
        description="answer: the source's questions; degradation-qa: perception tasks from the records",
    )

    @cached_property
    def checked_recipe(self) -> Recipe:
        """The recipe, validated against the registry once (``RecipeError`` when it does not)."""
        return Recipe.from_dict(self.recipe)

    @cached_property
    def teacher_obj(self) -> Teacher:
        """The teacher (its config validated; ``RobustgenError`` when it does not)."""
        cache = Output(self.out).path(f"{WORK_DIR}/teacher-cache") if "://" not in self.out else None
        return with_judge(
            make_teacher(self.teacher, self.teacher_config, cache_dir=cache, seed=self.seed),
            self.judge,
            cache,
            self.seed,
        )

    def fingerprint(self) -> dict[str, Any]:
        """Settings that change the dataset (not speed, workers or paths of caches)."""
        src = self.source if self.source == "samples" else str(Path(self.source).resolve())
        teacher = self.teacher_obj.fingerprint()
        return {
            "source": src,
            "format": self.format,
            "recipe": self.checked_recipe.to_dict(),
            "seed": self.seed,
            "limit": self.limit,
            "teacher": teacher,
            "image_format": self.image_format,
            "question": self.question,
            "coco_root": self.coco_root,
            "split": self.split,
            **({"task": self.task} if self.task != "answer" else {}),
            **({"keep_clean": True} if self.keep_clean else {}),
            **({"ssim": True} if self.ssim else {}),
            **({"plugins": plugins} if (plugins := installed_plugins()) else {}),  # a plugin can change records
            "visibility": self.checked_recipe.visibility.model_dump(mode="json"),  # the floor changes records
        }


class SynthSummary(BaseModel):
    total: int
    written: int
    failed: int
    resumed: int = Field(description="samples already done by an earlier run and skipped")
    seconds: float
    tokens: int = 0
    cost_usd: float = 0.0
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    rows_in_driver: int = Field(default=0, description="rows the driver processed itself")
    rows_on_ray: int = Field(default=0, description="rows Ray's workers processed")
    executor: str = Field(default="in-process", description="the run plan's executor")
    reason: str = Field(default="", description="why the plan chose it")


def with_judge(teacher: Teacher, judge: dict[str, Any] | None, cache_dir: str | None, seed: int) -> Teacher:
    """``teacher``, with the judge behind it when one is configured."""
    if not judge:
        return teacher
    from robustgen.annotate.judge import Judge, JudgeConfig, JudgedTeacher

    return JudgedTeacher(teacher, Judge(JudgeConfig.model_validate(judge), cache_dir=cache_dir, seed=seed))
