"""``train grpo`` and ``train sft`` (the train extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.cli.common import (
    app,
    out,
    user_errors,
)
from robustgen.errors import RobustgenError

PANEL = "Train"


train_app = typer.Typer(
    help="GRPO / SFT on TRL (needs the train extra: torch, transformers, trl).", no_args_is_help=True
)
app.add_typer(train_app, name="train", rich_help_panel=PANEL)


def _train(kind: str, config: Path) -> None:
    with user_errors():
        try:
            from robustgen.train.trainer import TrainConfig, grpo, sft
        except ImportError as exc:
            raise RobustgenError(f"training needs the train extra (pip install 'robustgen[train]'): {exc}") from None
        from pydantic import ValidationError

        try:
            cfg = TrainConfig.load(config)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"]) or "config"
            hint = " (trainer settings go under args:)" if e["type"] == "extra_forbidden" else ""
            raise RobustgenError(f"{config}: {where}: {e['msg']}{hint}") from None
        except (OSError, ValueError) as exc:
            raise RobustgenError(f"{config}: {str(exc).splitlines()[0]}") from None
        trainer = (grpo if kind == "grpo" else sft)(cfg)
    last = next((h for h in reversed(trainer.state.log_history) if "loss" in h), {})
    out.print(f"{kind}: {trainer.state.global_step} steps, last loss {last.get('loss')}, output in {cfg.output_dir}")


@train_app.command("grpo")
def train_grpo(config: Annotated[Path, typer.Option("--config", help="training YAML")]) -> None:
    """GRPO with the Robust-R1 rewards (accuracy, format, r_deg, r_len); `preset: paper` by default."""
    _train("grpo", config)


@train_app.command("sft")
def train_sft(config: Annotated[Path, typer.Option("--config", help="training YAML")]) -> None:
    """Supervised fine-tuning on the reference chains."""
    _train("sft", config)
