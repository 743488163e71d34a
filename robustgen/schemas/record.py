"""One line of a synth dataset (``DIR/data/*.jsonl``): the contract exports and trainers read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from robustgen.schemas.chain import ReasoningChain
from robustgen.schemas.degradation import AppliedDegradation
from robustgen.schemas.paths import check_relative, regular_file_under
from robustgen.schemas.teacher import JudgeVerdict


class Quality(BaseModel):
    model_config = ConfigDict(extra="allow")

    psnr: float
    ssim: float | None = Field(
        default=None, description="SSIM against the clean image (synth --ssim, and every degradation-qa sample)"
    )


class ChainQuality(BaseModel):
    """The chain quality gate's verdict on a written chain (``validate`` re-checks rather than trusting it)."""

    model_config = ConfigDict(extra="allow")

    version: str
    passed: bool
    checks: dict[str, str] = Field(description="per check: 'ok', 'off', or why it failed")


class ExtraImage(BaseModel):
    """A later image of a multi-image record (e.g. the second version in "which of two is more degraded"): its
    file, the exact degradations that made it from the record's clean image, and its quality against it."""

    model_config = ConfigDict(extra="allow")

    image: str = Field(min_length=1, description="relative to the dataset folder")
    degradations: list[AppliedDegradation]
    quality: Quality

    @field_validator("image")
    @classmethod
    def _inside(cls, image: str) -> str:
        return check_relative(image)


class DatasetRecord(BaseModel):
    """A written sample. Unknown extra keys are kept (forward compatible), known ones are checked."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    image: str = Field(min_length=1, description="degraded image, relative to the dataset folder")
    source_image: str
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    question: str
    answer: str | None
    choices: list[str] | None = None
    rationale: str | None = None
    degradations: list[AppliedDegradation]
    chain: ReasoningChain
    response: str
    teacher: dict[str, Any]
    quality: Quality
    chain_quality: ChainQuality | None = Field(default=None, description="the gate's verdict (None: older datasets)")
    judge: JudgeVerdict | None = Field(default=None, description="the judge's scores (synth --judge), else None")
    clean_image: str | None = Field(
        default=None, description="the clean image, relative to the dataset folder (synth --keep-clean), else None"
    )
    dropped: list[str] = Field(
        default_factory=list,
        description="planned degraders left out as invisible on this image even at severity 1 (recipe visibility)",
    )
    extra_images: list[ExtraImage] = Field(
        default_factory=list,
        description="images after the first, in prompt order (one <image> each); ``degradations`` and ``quality`` "
        "describe the first",
    )

    @field_validator("image", "clean_image")
    @classmethod
    def _inside(cls, image: str | None) -> str | None:
        return None if image is None else check_relative(image)

    def image_in(self, root: str | Path) -> Path:
        """The degraded image file under the dataset folder ``root``; ``ValueError`` when it is missing, not a
        regular file, or (through a symlink) outside ``root``. Records are data: never followed blindly."""
        return regular_file_under(root, self.image)

    @property
    def images(self) -> list[str]:
        """Every image of the record, in prompt order (one ``<image>`` placeholder each)."""
        return [self.image, *(x.image for x in self.extra_images)]

    def images_in(self, root: str | Path) -> list[Path]:
        """Every image file under ``root``, in prompt order (``ValueError`` as ``image_in``)."""
        return [regular_file_under(root, rel) for rel in self.images]

    def clean_image_in(self, root: str | Path) -> Path:
        """The kept clean image under ``root`` (``ValueError`` as ``image_in``; also when none was kept)."""
        if self.clean_image is None:
            raise ValueError("no clean image was kept (synth --keep-clean)")
        return regular_file_under(root, self.clean_image)
