"""Generated text is training data: every question, prompt and template sentence agrees with its label in number,
for every degrader in the catalog, and lists read "a, b and c"."""

from __future__ import annotations

import re

import pytest

from robustgen.annotate.base import TeacherInput
from robustgen.annotate.template import TemplateTeacher
from robustgen.annotate.wording import be, is_plural, join_words
from robustgen.degrade import registry
from robustgen.degrade.recipes import Recipe
from robustgen.pipelines.perception import perception_task
from robustgen.schemas import SourceRow

LABELS = sorted({registry.get(n).label for n in registry.names()})
#: the catalog's labels that name several things, by hand
PLURAL = {"scan lines", "bit errors", "demosaicing artefacts", "upsampling artefacts"}


def test_number_of_every_label_in_the_catalog():
    assert {label for label in LABELS if is_plural(label)} == PLURAL
    assert be("dirty lens") == "is" and be("scan lines") == "are" and be("darkness") == "is"


def test_lists_read_like_english():
    assert join_words(["a"]) == "a" and join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"]) == "a, b and c"


_WRONG = re.compile(r"\b(?:the )?(" + "|".join(map(re.escape, PLURAL)) + r") (is|means)\b", re.I)


@pytest.mark.parametrize("name", registry.names())
def test_every_degraders_questions_and_chain_agree_in_number(name):
    row = SourceRow(id="r", source="t", image="skimage:coffee", question="What is shown?", answer="a")
    recipe = Recipe(degraders=[name], per_image={"min": 1, "max": 1})
    teacher = TemplateTeacher()
    for seed in range(6):
        plan = recipe.sample(seed=seed, sample_id=f"r{seed}")
        task = perception_task(row, plan.degradations, seed, two_images=False)
        texts = [task.row.question, task.row.rationale or ""]
        chain = teacher.chain_for(TeacherInput.for_row(task.row, plan.degradations, recipe.reasoning_length))
        texts += [chain.influence, chain.reasoning, chain.conclusion]
        for text in texts:
            assert not _WRONG.search(text), text
            label = plan.degradations[0].label
            if text.startswith("How strong"):
                assert text == f"How strong {be(label)} the {label} in this image?"


def test_robust_u1_prompts_name_each_degradation_with_its_article(tmp_path):
    import json

    from ..helpers import cli

    res = cli("synth", "--out", tmp_path / "ds", "--limit", 4, "--keep-clean", "--export", "robust-u1")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in next((tmp_path / "ds" / "exports" / "robust-u1").glob("*.jsonl")).open()]
    recs = {}
    for shard in (tmp_path / "ds" / "data").glob("*.jsonl"):
        for line in shard.open():
            rec = json.loads(line)
            recs[rec["id"]] = rec
    for row in rows:
        labels = list(dict.fromkeys(d["label"] for d in recs[row["id"].split("~")[0]]["degradations"]))
        what = join_words([f"the {x}" for x in labels])
        assert row["prompt"] == f"<image>Restore this image: remove {what} to recover the clean picture."


@pytest.mark.parametrize("seed", range(16))
def test_the_template_teacher_passes_its_own_gate_on_perception_tasks(seed):
    from robustgen.annotate.gate import gate_chain
    from robustgen.pipelines.samples import load_samples

    recipe = Recipe()
    teacher = TemplateTeacher()
    for row in load_samples():
        plan = recipe.sample(seed=seed, sample_id=row.id)
        task = perception_task(row, plan.degradations, seed, two_images=False)
        item = TeacherInput.for_row(task.row, plan.degradations, recipe.reasoning_length)
        chain = teacher.chain_for(item)
        assert gate_chain(chain, plan.degradations, task.row.question, task.row.choices) == [], (row.id, seed)
