import pytest

import robustgen as rg
from robustgen.annotate.validate import answer_matches, check_chain, normalize_answer
from robustgen.schemas import LengthBand, ReasoningChain


@pytest.mark.parametrize(
    "given, ok",
    [
        ("1", True),
        ("option 1", True),
        ("B", True),
        ("(b)", True),
        ("b) a spoon", True),
        ("a spoon", True),
        ("The spoon.", True),
        ("1. a spoon", True),
        ("0", False),
        ("a fork", False),
        ("spoon or fork", False),
        ("", False),
    ],
)
def test_multiple_choice_accepts_index_letter_or_text(given, ok):
    assert answer_matches(given, "1", ["a fork", "a spoon", "a knife", "a straw"]) is ok


def test_short_answers_are_normalised():
    assert normalize_answer("  The Helmet! ") == "helmet"
    assert answer_matches("a helmet", "helmet")
    assert not answer_matches("hat", "helmet")


def test_an_answer_made_only_of_articles_or_punctuation_can_still_match():
    # "Which word is missing: ___ cat?" -> "the": the normal form is empty, the words still compare
    assert answer_matches("The", "the") and answer_matches("An.", "an")
    assert not answer_matches("a", "the") and not answer_matches("", "the")
    assert answer_matches("?", "?") and not answer_matches("!", "?")


def _plan():
    return rg.Recipe(degraders=["fog", "noise"], per_image={"min": 2, "max": 2}).sample(seed=0, sample_id="v")


def _chain(plan, reasoning_words=40, answer="helmet", influence="Fog veils the scene."):
    return ReasoningChain(
        types=[(d.label, round(d.severity, 2)) for d in plan.degradations],
        influence=influence,
        reasoning=" ".join(["w"] * reasoning_words),
        conclusion="So.",
        answer=answer,
    )


def test_a_good_chain_passes_and_each_fault_is_named():
    plan, band = _plan(), LengthBand()
    lo, hi = band.bounds(plan.total_severity)
    assert check_chain(_chain(plan, (lo + hi) // 2), plan.degradations, "helmet", None, band) == []
    problems = check_chain(
        _chain(plan, hi + 5, answer="hat", influence="I'm sorry, I cannot see the image."),
        plan.degradations[::-1],
        "helmet",
        None,
        band,
    )
    text = " | ".join(problems)
    assert "TYPE must be exactly" in text and "does not match" in text
    assert f"between {lo} and {hi} words" in text and "refusal" in text


def test_length_band_grows_with_severity():
    band = LengthBand()
    assert band.bounds(0.2)[0] < band.bounds(2.0)[0] and band.bounds(0.2)[1] < band.bounds(2.0)[1]
