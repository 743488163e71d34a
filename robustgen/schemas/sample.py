"""The typed values that travel between the stages of a job: a source row, a degraded sample, a failure."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from robustgen.schemas.degradation import AppliedDegradation
from robustgen.schemas.record import ExtraImage, Quality
from robustgen.schemas.redaction import redact
from robustgen.schemas.teacher import Usage


class SourceRow(BaseModel):
    """One input row, as every source reader (folder, JSONL, CSV, LLaVA, A-OKVQA, TSV, parquet, the built-in
    samples) yields it: an image reference or the encoded image itself, the question and the ground truth."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    id: str = Field(min_length=1, description="stable sample id; drives the sample's random stream")
    source: str = Field(default="", description="where the row came from (file:line)")
    image: str | None = Field(
        default=None, description="image file path (resolved under the source root) or skimage:NAME"
    )
    image_bytes: bytes | None = Field(
        default=None,
        description="the encoded image: sources that embed it, or a file's bytes carried to workers on other machines",
    )
    question: str = Field(min_length=1)
    answer: str | None = Field(
        default=None, description="ground truth (multiple choice: the option index); None = open"
    )
    choices: list[str] | None = Field(default=None, description="multiple-choice options, in order")
    rationale: str | None = Field(default=None, description="why the answer is right, if the source has one")
    retry: bool = Field(default=False, description="a retried failure: the teacher asks afresh (no cached reply)")

    @field_validator("id", "source", "image", "question", "answer", "rationale", "choices")
    @classmethod
    def _unicode(cls, value: str | list[str] | None) -> str | list[str] | None:
        for text in value if isinstance(value, list) else [value]:
            if text is not None and not _encodable(text):
                raise ValueError("holds bytes that are not valid UTF-8 (or a lone surrogate)")
        return value

    @field_validator("choices")
    @classmethod
    def _choices(cls, choices: list[str] | None) -> list[str] | None:
        if choices is not None and len(choices) < 2:
            raise ValueError("a multiple-choice question needs at least two choices")
        return choices

    @model_validator(mode="after")
    def _an_image(self) -> SourceRow:
        if self.image is None and self.image_bytes is None:
            raise ValueError("a row needs 'image' (a path) or 'image_bytes'")
        return self

    @property
    def image_ref(self) -> str:
        """The source image as a record names it."""
        return self.image if self.image is not None else f"{self.source} (embedded)"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """Text that can be written as UTF-8: lone surrogates become visible escapes (``\\ud800``)."""
    return text if _encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


class Failure(BaseModel):
    """An input that could not be written: which, where from, at which stage, and why (one line)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: str = ""
    stage: str = Field(
        description="read | degrade | write | annotate | validate | quality | transport | budget | internal"
    )
    reason: str
    usage: Usage | None = Field(default=None, description="what the teacher spent before failing")

    @field_validator("id", "source")
    @classmethod
    def _writable(cls, text: str) -> str:
        return printable(text)

    @field_validator("reason")
    @classmethod
    def _one_line(cls, reason: str) -> str:
        return redact(" ".join(printable(reason).split()))  # never a secret in failures.jsonl


class DegradedSample(BaseModel):
    """A row after the degrade stage: the degraded image is written; everything the teacher needs is here."""

    model_config = ConfigDict(extra="forbid")

    row: SourceRow
    image: str = Field(description="degraded image, relative to the dataset folder")
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    degradations: list[AppliedDegradation]
    quality: Quality
    clean_image: str | None = Field(default=None, description="the clean image kept beside it (synth --keep-clean)")
    extra_images: list[ExtraImage] = Field(default_factory=list, description="later images of a multi-image task")
    dropped: list[str] = Field(
        default_factory=list, description="planned degraders left out: invisible on this image even at severity 1"
    )

    @property
    def images(self) -> list[str]:
        """The degraded image files of the sample, in prompt order."""
        return [self.image, *(x.image for x in self.extra_images)]
