"""GRPO and SFT on TRL from a YAML config (``robustgen train grpo|sft --config FILE``). Needs the train extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from robustgen.train.rewards import trl_reward_funcs

#: the Robust-R1 paper's GRPO settings
PAPER_GRPO = {
    "beta": 0.04,
    "loss_type": "grpo",
    "num_generations": 8,
    "max_completion_length": 2048,
    "reward_weights": [1.0, 1.0, 1.0, 1.0],  # accuracy, format, r_deg, r_len
}


class TrainConfig(BaseModel):
    """A training run. ``args`` go to TRL's GRPOConfig/SFTConfig and win over the preset."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="model folder (or hub id where the hub is reachable)")
    dataset: str = Field(description="a robustgen dataset folder or its trl export")
    output_dir: str = "runs/robustgen"
    preset: Literal["paper", "none"] = "paper"
    processor: Literal["auto", "tiny"] = Field(default="auto", description="tiny: the offline test processor")
    freeze_vision: bool = True
    reward_variant: Literal["paper", "reference"] = "paper"
    reward_weights: dict[str, float] = Field(default_factory=dict, description="accuracy/format/r_deg/r_len")
    length_in_tokens: bool = Field(default=True, description="r_len counts tokens (else words)")
    args: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        base = Path(path).parent
        for key in ("model", "dataset", "output_dir"):  # relative paths are relative to the config file
            if key in data and not Path(str(data[key])).is_absolute() and (base / str(data[key])).exists():
                data[key] = str(base / str(data[key]))
        return cls(**data)


def _processor(cfg: TrainConfig):
    if cfg.processor == "tiny":
        from transformers import AutoTokenizer

        from robustgen.train.testing import tiny_processor

        return tiny_processor(AutoTokenizer.from_pretrained(cfg.model))
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(cfg.model)


def _model(cfg: TrainConfig):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(cfg.model)
    if cfg.freeze_vision:
        visual = getattr(model, "visual", None) or getattr(getattr(model, "model", None), "visual", None)
        if visual is not None:
            for p in visual.parameters():
                p.requires_grad_(False)
    return model


def grpo(cfg: TrainConfig):
    """Run GRPO; returns the finished trainer (``trainer.state.log_history`` holds losses and rewards)."""
    from trl import GRPOConfig, GRPOTrainer

    from robustgen.train.data import load_training_dataset

    processor = _processor(cfg)
    settings: dict[str, Any] = dict(PAPER_GRPO) if cfg.preset == "paper" else {}
    if cfg.reward_weights:
        names = ["accuracy", "format", "r_deg", "r_len"]
        settings["reward_weights"] = [float(cfg.reward_weights.get(n, 1.0)) for n in names]
    settings.update(cfg.args)
    settings.setdefault("report_to", "none")
    args = GRPOConfig(output_dir=cfg.output_dir, **settings)
    tokenizer = getattr(processor, "tokenizer", processor) if cfg.length_in_tokens else None
    trainer = GRPOTrainer(
        model=_model(cfg),
        reward_funcs=trl_reward_funcs(tokenizer=tokenizer, variant=cfg.reward_variant),
        args=args,
        train_dataset=load_training_dataset(cfg.dataset),
        processing_class=processor,
    )
    trainer.train()
    return trainer


def sft(cfg: TrainConfig):
    """Run SFT on the reference chains; returns the finished trainer."""
    from trl import SFTConfig, SFTTrainer

    from robustgen.train.data import load_training_dataset, with_completions

    settings: dict[str, Any] = {"report_to": "none"}
    settings.update(cfg.args)
    args = SFTConfig(output_dir=cfg.output_dir, **settings)
    ds = with_completions(load_training_dataset(cfg.dataset))
    trainer = SFTTrainer(model=_model(cfg), args=args, train_dataset=ds, processing_class=_processor(cfg))
    trainer.train()
    return trainer
