"""The Robust-R1 tagged text: render, strict and lenient parsing, and their properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustgen.schemas import ChainParseError, ReasoningChain, parse_chain, render_chain

CHAIN = ReasoningChain(
    types=[("motion blur", 0.47), ("compression", 0.33)],
    influence="Edges smear horizontally.",
    reasoning="The cup is still recognisable by its shape.",
    conclusion="It is a cup.",
    answer="0",
)
TEXT = (
    "<TYPE>motion blur(0.47), compression(0.33)<TYPE_END>\n<INFLUENCE>Edges smear horizontally.<INFLUENCE_END>\n"
    "<REASONING>The cup is still recognisable by its shape.<REASONING_END>\n<CONCLUSION>It is a cup.<CONCLUSION_END>\n"
    "<ANSWER>0<ANSWER_END>"
)


def test_render_is_exactly_the_robust_r1_shape():
    assert render_chain(CHAIN) == TEXT


def test_strict_parse_inverts_render():
    assert parse_chain(TEXT) == CHAIN


def test_severities_render_with_two_decimals():
    c = CHAIN.model_copy(update={"types": [("noise", 0.5), ("fog", 1.0)]})
    assert render_chain(c).startswith("<TYPE>noise(0.50), fog(1.00)<TYPE_END>")


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        (TEXT.replace("<TYPE>", "<TYP>"), 0, "expected <TYPE>"),
        (TEXT + " ", len(TEXT), "unexpected text after"),
        (TEXT.replace("\n<INFLUENCE>", " <INFLUENCE>"), TEXT.index("\n<INFLUENCE>"), "expected a newline"),
        (TEXT.replace("(0.47)", "(0.5)"), 6, "expected 'label(0.00)'"),
        (TEXT.replace("(0.47), ", "(0.47),"), len("<TYPE>motion blur(0.47)"), "', '"),
        (TEXT.replace("<ANSWER_END>", ""), TEXT.index("<ANSWER>") + len("<ANSWER>"), "missing <ANSWER_END>"),
        (TEXT.replace("motion blur", "Motion Blur"), 0, "lower-case"),
    ],
)
def test_strict_errors_say_where(text, position, fragment):
    with pytest.raises(ChainParseError) as exc:
        parse_chain(text)
    assert fragment in str(exc.value)
    assert exc.value.position == position


def test_lenient_tolerates_model_noise():
    noisy = (
        "Sure! Here is my answer:\n< TYPE > Motion Blur ( 0.47 ) ,compression(0.33)<TYPE_END>\n\n"
        "<INFLUENCE>  Edges smear horizontally.  <INFLUENCE_END>\n<REASONING>The cup is still recognisable "
        "by its shape.<REASONING_END><CONCLUSION>It is a cup.<CONCLUSION_END>\nThanks!"
    )
    got = parse_chain(noisy, strict=False)
    assert got.types == CHAIN.types and got.reasoning == CHAIN.reasoning and got.answer == ""
    with_answer = parse_chain(noisy.replace("\nThanks!", "<ANSWER> 0 <ANSWER_END> bye"), strict=False)
    assert with_answer == CHAIN
    unterminated = parse_chain(noisy.replace("\nThanks!", "<ANSWER>0"), strict=False)
    assert unterminated.answer == "0"


def test_lenient_still_needs_the_core_sections():
    with pytest.raises(ChainParseError, match="REASONING"):
        parse_chain(TEXT.replace("<REASONING>", "").replace("<REASONING_END>", ""), strict=False)


def test_invalid_chains_are_rejected_by_the_model():
    with pytest.raises(ValueError):
        ReasoningChain(types=[("a(b", 0.1)], influence="x", reasoning="y", conclusion="z", answer="0")
    with pytest.raises(ValueError):
        ReasoningChain(types=[], influence="x <ANSWER> y", reasoning="y", conclusion="z")
    with pytest.raises(ValueError):
        ReasoningChain(types=[("fog", 1.5)], influence="x", reasoning="y", conclusion="z")


_word = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12)
_text = st.lists(_word, min_size=1, max_size=8).map(" ".join).filter(lambda t: "<" not in t)
_label = st.lists(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10), min_size=1, max_size=3).map(" ".join)
_chains = st.builds(
    ReasoningChain,
    types=st.lists(st.tuples(_label, st.integers(0, 100).map(lambda i: i / 100)), max_size=4),
    influence=_text,
    reasoning=_text,
    conclusion=_text,
    answer=st.one_of(st.just(""), _text),
)


@settings(max_examples=300, deadline=None)
@given(_chains)
def test_round_trip_property(chain):
    text = render_chain(chain)
    assert parse_chain(text) == chain
    assert parse_chain(text, strict=False) == chain
    assert render_chain(parse_chain(text)) == text


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=st.sampled_from(list("<>()_,.0123 \nTYPEINFLUCRASOWDabc")))))
def test_parser_never_crashes_on_arbitrary_text(text):
    for strict in (True, False):
        try:
            parse_chain(text, strict=strict)
        except ChainParseError:
            pass


_noise = st.text(max_size=30).filter(lambda t: "<" not in t)


@settings(max_examples=200, deadline=None)
@given(_chains, _noise, _noise)
def test_lenient_ignores_text_around_the_tags(chain, before, after):
    got = parse_chain(before + render_chain(chain) + after, strict=False)
    assert got.types == chain.types and got.reasoning == chain.reasoning
