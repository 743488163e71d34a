"""Golden values and properties of the Robust-R1 rewards, both variants."""

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustgen.train.rewards import accuracy_reward, format_reward, r_deg, r_len, trl_reward_funcs


def chain(types: str, answer: str = "1", reasoning: str = "one two three four") -> str:
    return (
        f"<TYPE>{types}<TYPE_END>\n<INFLUENCE>blur<INFLUENCE_END>\n<REASONING>{reasoning}<REASONING_END>\n"
        f"<CONCLUSION>so<CONCLUSION_END>\n<ANSWER>{answer}<ANSWER_END>"
    )


REF = chain("motion blur(0.45), jpeg compression(0.30)")


def test_r_deg_reference_golden_case():
    assert r_deg(chain("motion blur(0.50), noise(0.20)"), REF, "reference") == pytest.approx(-0.55)


def test_r_deg_reference_quirks():
    # duplicates count again, names are case-sensitive, missing reference types cost -1 each
    dup = r_deg(chain("motion blur(0.45), motion blur(0.45)"), REF, "reference")
    assert dup == pytest.approx(2 * 1.5 - 1)
    assert r_deg(chain("Motion Blur(0.45)"), REF, "reference") == pytest.approx(-1 - 2)
    assert r_deg("no tags at all", REF, "reference") == pytest.approx(-2)
    assert r_deg(chain("motion blur(1.2.3)"), REF, "reference") == 0.0


def test_r_deg_paper_equation():
    assert r_deg(chain("motion blur(0.50), noise(0.20)"), REF) == pytest.approx((1 - 0.05) - 1)
    assert r_deg(REF, REF) == pytest.approx(2.0)
    # each reference type is matched once: a duplicate prediction is a miss
    assert r_deg(chain("motion blur(0.45), motion blur(0.45)"), REF) == pytest.approx(1.0 - 1.0)
    assert r_deg(chain("Motion Blur(0.45)"), REF) == pytest.approx(1.0)  # labels compared lower-cased
    assert r_deg("nothing", REF) == 0.0


def test_r_len_words_tokens_and_clip():
    ref = chain("fog(0.1)", reasoning=" ".join(["w"] * 20))
    assert r_len(ref, ref) == 1.0
    half = " ".join(ref.split()[: len(ref.split()) // 2])
    assert r_len(half, ref) == pytest.approx(0.5, abs=0.05)
    long = ref + " x" * 500
    assert r_len(long, ref) == -1.0 and r_len(long, ref, clip=False) < -1.0

    class CharTokenizer:
        def encode(self, text):
            return list(text)

    assert r_len("abcd", "abcdefgh", tokenizer=CharTokenizer()) == pytest.approx(0.5)


def test_accuracy_variants():
    assert accuracy_reward(chain("fog(0.1)", "1"), REF) == 1.0
    assert accuracy_reward(chain("fog(0.1)", " B "), REF, choices=["x", "y", "z"]) == 1.0
    assert accuracy_reward(chain("fog(0.1)", "y"), REF, choices=["x", "y", "z"]) == 1.0
    assert accuracy_reward(chain("fog(0.1)", "2"), REF) == 0.0
    assert accuracy_reward(chain("fog(0.1)", " 1 "), REF, variant="reference") == 0.0  # exact equality
    assert accuracy_reward("no answer", "no answer either", variant="reference") == 1.0  # both missing
    assert accuracy_reward("no answer", "no answer either") == 0.0


def test_format_reward_needs_all_five_in_order():
    assert format_reward(REF) == 1.0
    assert format_reward(REF.replace("<CONCLUSION>", "")) == 0.0
    swapped = REF.replace("<TYPE>", "<X>").replace("<TYPE_END>", "<Y>") + "<TYPE>a<TYPE_END>"
    assert format_reward(swapped) == 0.0


def test_trl_adapters_read_the_solution_column_and_conversational_completions():
    funcs = trl_reward_funcs(weights={"r_len": 0.5})
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "r_deg", "r_len"]
    completions = [[{"role": "assistant", "content": REF}], [{"role": "assistant", "content": "garbage"}]]
    out = {
        f.__name__: f(prompts=["p", "p"], completions=completions, solution=[REF, REF], answer=["1", "1"])
        for f in funcs
    }
    assert out["accuracy"] == [1.0, 0.0] and out["format"] == [1.0, 0.0]
    assert out["r_deg"][0] == pytest.approx(2.0) and out["r_len"][0] == pytest.approx(0.5)


def test_train_rewards_import_neither_opencv_nor_ray():
    code = (
        "import sys, robustgen.train.rewards\n"
        "bad = [m for m in ('cv2', 'ray', 'albumentations', 'skimage') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.sampled_from(["paper", "reference"]))
def test_rewards_never_raise(completion, reference, variant):
    for value in (
        r_deg(completion, reference, variant),
        r_len(completion, reference),
        accuracy_reward(completion, reference, variant=variant),
        format_reward(completion),
    ):
        assert isinstance(value, float)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["fog", "noise", "motion blur", "jpeg compression"]), st.integers(0, 100)), max_size=4
    )
)
def test_paper_r_deg_is_bounded_by_the_prediction_count(types):
    text = chain(", ".join(f"{n}({s / 100:.2f})" for n, s in types))
    assert -len(types) <= r_deg(text, REF) <= min(len(types), 2)


def test_shipped_example_configs_parse():
    from pathlib import Path

    from robustgen.annotate.registry import teacher_config
    from robustgen.train.trainer import TrainConfig

    root = Path(__file__).resolve().parents[2] / "examples"
    for name in ("grpo.yaml", "sft.yaml"):
        cfg = TrainConfig.load(root / "training" / name)
        assert cfg.model and cfg.dataset and cfg.args
    teacher = teacher_config("openai", root / "openai_local" / "teacher.yaml", {"base_url": "http://127.0.0.1:8000/v1"})
    assert teacher.structured_output == "auto" and teacher.max_reasks == 3
