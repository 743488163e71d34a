"""The chain quality gate, measured on a labelled set (hand-written chains of every failure kind, the template
teacher's, and real SmolLM2-135M replies to the single-mode prompt, one batch held out while the checks were
written), and wired where the issue asks: before a record is written, in re-asks, in validate and stats."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

import robustgen as rg
from robustgen.annotate.base import Teacher, TeacherInput
from robustgen.annotate.gate import CODES, gate_chain
from robustgen.annotate.gate_eval import findings_of, labelled, scores
from robustgen.annotate.template import TemplateTeacher
from robustgen.degrade.recipes import Recipe
from robustgen.pipelines.output import Output
from robustgen.pipelines.process import annotate_sample
from robustgen.pipelines.samples import load_samples
from robustgen.schemas import (
    DatasetRecord,
    DegradedSample,
    Failure,
    Quality,
    ReasoningChain,
    TeacherInfo,
    TeacherResult,
    Usage,
    render_chain,
)
from robustgen.schemas.recipe import ChainGate

from ..helpers import cli

SET = labelled(Path(__file__).parent / "data" / "chains.jsonl")
TUNING = [r for r in SET if r["origin"] != "smollm2-heldout"]
HELD_OUT = [r for r in SET if r["origin"] == "smollm2-heldout"]


def test_the_labelled_set_is_large_and_covers_every_check():
    assert len(SET) >= 100
    for code in CODES:
        assert sum(code in r["expect"] for r in SET) >= 8, f"too few examples of {code}"
        assert sum(code not in r["expect"] for r in SET) >= 50
    assert sum(not r["expect"] for r in SET) >= 50  # good chains
    assert {"hand", "template", "smollm2", "smollm2-heldout"} <= {r["origin"] for r in SET}


@pytest.mark.parametrize("row", TUNING, ids=lambda r: r["id"])
def test_each_labelled_chain_gets_exactly_its_findings(row):
    assert findings_of(row) == set(row["expect"])


def test_held_out_tiny_model_chains_are_all_rejected_and_the_checks_mostly_right():
    """Written before these replies were seen: every one of them is bad and must be rejected; per check the
    precision and recall are what RESULTS.md reports (not tuned to 1.0)."""
    assert all(findings_of(r) for r in HELD_OUT)
    s = scores(HELD_OUT)
    assert s["degradation_grounding"]["recall"] >= 0.9 and s["question_grounding"]["recall"] >= 0.8
    assert s["echo"]["recall"] >= 0.8 and all(s[c]["precision"] >= 0.6 for c in CODES)


@pytest.mark.parametrize("seed", range(10))
def test_the_template_teacher_passes_the_gate_on_every_sample(seed):
    recipe = Recipe()
    teacher = TemplateTeacher()
    for row in load_samples():
        plan = recipe.sample(seed=seed, sample_id=row.id)
        chain = teacher.chain_for(TeacherInput.for_row(row, plan.degradations, recipe.reasoning_length))
        assert gate_chain(chain, plan.degradations, row.question, row.choices) == [], (row.id, seed)


def test_each_check_can_be_switched_off():
    leaky = next(r for r in TUNING if r["expect"] == ["leak"])
    assert findings_of(leaky) == {"leak"}
    assert findings_of(leaky, ChainGate(leak=False)) == set()
    echo = next(r for r in TUNING if "echo" in r["expect"])
    assert "echo" not in findings_of(echo, ChainGate(echo=False))


class _Leaky(Teacher):
    """A plugin teacher whose chains name the answer as given: the pipeline's gate must stop them."""

    name = "leaky-test"
    pooled = False

    async def annotate(self, item: TeacherInput) -> TeacherResult:
        chain = TemplateTeacher().chain_for(item)
        chain = chain.model_copy(update={"reasoning": "We were told the answer. " + chain.reasoning})
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind="leaky", model="x", mode="single"))


def test_a_plugin_teachers_chain_is_gated_before_it_is_written(tmp_path):
    row = load_samples()[0]
    recipe = Recipe()
    plan = recipe.sample(seed=0, sample_id=row.id)
    sample = DegradedSample(
        row=row,
        image="images/x.jpg",
        width=8,
        height=8,
        degradations=plan.degradations,
        quality=Quality(psnr=1, ssim=1),
    )
    out = Output(str(tmp_path))
    res = asyncio.run(annotate_sample(_Leaky(), sample, recipe.reasoning_length, out))
    assert isinstance(res, Failure) and res.stage == "quality" and "leak:" in res.reason
    ok = asyncio.run(annotate_sample(TemplateTeacher(), sample, recipe.reasoning_length, out))
    assert isinstance(ok, DatasetRecord) and ok.chain_quality.passed
    assert set(ok.chain_quality.checks) == set(CODES) and set(ok.chain_quality.checks.values()) == {"ok"}
    off = asyncio.run(annotate_sample(_Leaky(), sample, recipe.reasoning_length, out, gate=ChainGate(leak=False)))
    assert isinstance(off, DatasetRecord) and off.chain_quality.checks["leak"] == "off"


def test_reasks_carry_the_gates_reasons():
    from ..annotate.fake_openai import FakeOpenAI, Fault
    from .test_openai_faults import item as item_fixture
    from .test_openai_faults import teacher

    item = item_fixture.__wrapped__()
    with FakeOpenAI() as server:
        bad = {
            "influence": "Motion blur smears edges and fog veils the scene.",
            "reasoning": "In the original image the suit is clearly orange, not blue or white, so orange it is.",
            "conclusion": "The suit is orange.",
            "answer": "1",
        }
        server.script.append(Fault("content", content=json.dumps(bad)))
        res = asyncio.run(teacher(server.url).annotate(item))
        assert res.usage.reasks == 1
        assert "leak:" in server.requests[1]["messages"][-1]["content"]
        assert "original image" not in res.chain.reasoning


def test_validate_flags_planted_bad_chains_by_id_and_code_and_leaves_good_ones_alone(tmp_path):
    ds = tmp_path / "ds"
    assert cli("synth", "--out", ds).returncode == 0
    assert cli("validate", ds).returncode == 0
    shard = next((ds / "data").glob("*.jsonl"))
    recs = [json.loads(line) for line in shard.read_text().splitlines()]
    planted = {}
    for rec, (code, edit) in zip(
        recs[:3],
        [
            ("leak", lambda c: {**c, "reasoning": "Comparing with the clean image settles it. " + c["reasoning"]}),
            ("echo", lambda c: {**c, "influence": "how these degradations change what can be seen in this image"}),
            ("degeneration", lambda c: {**c, "conclusion": "This conclusion sums up the reasoning above."}),
        ],
        strict=True,
    ):
        chain = ReasoningChain.model_validate(edit(rec["chain"]))
        rec["chain"], rec["response"] = chain.model_dump(mode="json"), render_chain(chain)
        planted[rec["id"]] = code
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = cli("validate", ds)
    assert res.returncode == 1
    quality = [line for line in res.stderr.splitlines() if "chain quality" in line]
    for rid, code in planted.items():
        assert any(f"({rid}): chain quality {code}:" in line for line in quality), (rid, code, res.stderr)
    assert all(any(f"({rid})" in line for rid in planted) for line in quality)  # the good ones are left alone
    stats = cli("stats", ds, "--out", tmp_path / "st")
    assert stats.returncode == 0 and "leak 1" in stats.stdout.replace("\n", " ")


def test_a_dataset_without_stored_verdicts_is_rechecked(tmp_path):
    """Older datasets (no chain_quality) validate, and a stored verdict is not trusted."""
    ds = tmp_path / "ds"
    assert cli("synth", "--out", ds, "--limit", 3).returncode == 0
    shard = next((ds / "data").glob("*.jsonl"))
    recs = [json.loads(line) for line in shard.read_text().splitlines()]
    recs[0].pop("chain_quality")
    chain = ReasoningChain.model_validate({**recs[1]["chain"], "conclusion": "The ground truth says so."})
    recs[1]["chain"], recs[1]["response"] = chain.model_dump(mode="json"), render_chain(chain)
    assert recs[1]["chain_quality"]["passed"] is True  # the stored verdict claims a pass
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = cli("validate", ds)
    assert res.returncode == 1 and f"({recs[1]['id']}): chain quality leak" in res.stderr
    assert f"({recs[0]['id']})" not in res.stderr
    shutil.rmtree(ds)


def test_recipe_tunes_the_gate(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("chain_gate:\n  leak: false\n  max_repeats: 5\n")
    assert rg.Recipe.load(p).chain_gate == ChainGate(leak=False, max_repeats=5)
    p.write_text("chain_gate:\n  lek: false\n")
    with pytest.raises(rg.RecipeError, match="chain_gate"):
        rg.Recipe.load(p)
