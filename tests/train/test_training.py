"""GRPO and SFT smoke tests on a tiny offline Qwen2-VL with a dataset `synth` makes in the test.

They assert mechanics (steps run, losses finite, every reward logged, rewards see the dataset columns),
not learning.
"""

from __future__ import annotations

import math
import subprocess

import pytest
import torch  # noqa: E402,F401  (fails loudly without the train extra)

import robustgen.train.trainer as trainer_mod  # noqa: E402
from robustgen.train.testing import save_tiny  # noqa: E402
from robustgen.train.trainer import TrainConfig  # noqa: E402

from ..helpers import robustgen_cmd  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    cmd = robustgen_cmd()
    subprocess.run([*cmd, "synth", "--out", str(root / "ds"), "--limit", "4"], check=True, capture_output=True)
    subprocess.run(
        [*cmd, "export", str(root / "ds"), "--to", "trl", "--out", str(root / "trl")], check=True, capture_output=True
    )
    model, _ = save_tiny(root / "model")
    return root, model


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_grpo_two_steps_log_every_reward_and_see_the_columns(setup, monkeypatch):
    root, model = setup
    seen: list[set[str]] = []
    real = trainer_mod.trl_reward_funcs

    def spying(**kw):
        funcs = real(**kw)

        def wrap(f):
            def g(prompts=None, completions=None, **kwargs):
                seen.append(set(kwargs))
                return f(prompts=prompts, completions=completions, **kwargs)

            g.__name__ = f.__name__
            return g

        return [wrap(f) for f in funcs]

    monkeypatch.setattr(trainer_mod, "trl_reward_funcs", spying)
    cfg = TrainConfig(
        model=str(model),
        dataset=str(root / "ds"),
        output_dir=str(root / "grpo"),
        processor="tiny",
        args={
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "num_generations": 2,
            "max_completion_length": 16,
            "logging_steps": 1,
            "use_cpu": True,
            "save_strategy": "no",
        },
    )
    t = trainer_mod.grpo(cfg)
    assert t.state.global_step == 2
    logs = [h for h in t.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    for name in ("accuracy", "format", "r_deg", "r_len"):
        assert all(f"rewards/{name}/mean" in h for h in logs), name
    assert t.args.beta == 0.04 and t.args.loss_type == "grpo"  # the paper preset
    assert seen and all({"solution", "answer", "choices", "degradations"} <= keys for keys in seen)
    visual = t.model.model.visual if hasattr(t.model, "model") else t.model.visual
    assert not any(p.requires_grad for p in visual.parameters())  # vision tower frozen


def test_sft_three_steps_on_the_trl_export_via_the_cli(setup, tmp_path):
    root, model = setup
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"model: {model}\ndataset: {root / 'trl'}\noutput_dir: {tmp_path / 'out'}\npreset: none\nprocessor: tiny\n"
        "args: {max_steps: 3, per_device_train_batch_size: 2, logging_steps: 1, use_cpu: true, "
        "save_strategy: 'no', max_length: null}\n"
    )
    cmd = [*robustgen_cmd(), "train", "sft", "--config", str(config)]
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "sft: 3 steps" in res.stdout
    loss = float(res.stdout.split("last loss")[1].split(",")[0])
    assert math.isfinite(loss) and loss > 0


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\ndataset: y\nlearning_rate: 3\n")
    cmd = [*robustgen_cmd(), "train", "grpo", "--config", str(bad)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "learning_rate" in res.stderr and "Traceback" not in res.stderr
