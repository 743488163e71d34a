"""The offline teacher on the built-in sample set: valid against the schema and the record."""

import asyncio

import robustgen as rg
from robustgen.annotate.base import TeacherInput
from robustgen.annotate.template import TemplateTeacher
from robustgen.annotate.validate import check_chain
from robustgen.pipelines.samples import load_samples
from robustgen.schemas import LengthBand, parse_chain, render_chain


def test_template_chains_for_every_sample_are_valid():
    teacher, recipe = TemplateTeacher(), rg.Recipe(per_image={"min": 0 + 1, "max": 4})
    samples = load_samples()
    assert len(samples) >= 12
    for s in samples:
        for seed in range(3):
            plan = recipe.sample(seed=seed, sample_id=s.id)
            item = TeacherInput(s.id, None, None, plan.degradations, s.question, s.answer, s.choices, s.rationale)
            res = asyncio.run(teacher.annotate(item))
            chain = res.chain
            assert parse_chain(render_chain(chain)) == chain
            assert check_chain(chain, plan.degradations, s.answer, s.choices, LengthBand()) == []
            assert chain.labels == [d.label for d in plan.degradations]
            for d in plan.degradations:
                assert d.label in chain.influence
            if s.rationale:
                assert s.rationale.split(".")[0] in chain.reasoning
            assert res.teacher.kind == "template" and res.usage.requests == 0


def test_template_is_deterministic_and_uses_no_invented_facts():
    s = load_samples()[2]  # short answer, has a rationale
    plan = rg.Recipe().sample(seed=1, sample_id=s.id)
    item = TeacherInput(s.id, None, None, plan.degradations, s.question, s.answer, None, None)
    a, b = TemplateTeacher().chain_for(item), TemplateTeacher().chain_for(item)
    assert a == b
    # without a rationale the reasoning only restates the question, the degradations and the answer
    assert s.question in a.reasoning and s.answer in a.reasoning


def test_clean_image_gets_the_none_type():
    item = TeacherInput("x", None, None, [], "What is shown?", "cat", None, "A cat sits on a mat.")
    chain = TemplateTeacher().chain_for(item)
    assert chain.types == [("none", 0.0)] and render_chain(chain).startswith("<TYPE>none(0.00)<TYPE_END>")


def test_every_preset_gets_chains_the_quality_gate_accepts():
    """Second-order and repeating presets apply one degrader several times and several blurs at once; the
    template must still write a chain that does not repeat itself (found: bsrgan lost 3 of 14 samples)."""
    from robustgen.annotate.gate import gate_chain
    from robustgen.degrade.recipes import presets

    teacher = TemplateTeacher()
    question, choices = "What is shown in the picture?", ["a cat", "a rocket", "a cup"]
    for name in presets():
        recipe = rg.Recipe.load(name)
        for i in range(150):
            plan = recipe.sample(seed=7, sample_id=f"s{i}")
            item = TeacherInput(
                f"s{i}", None, None, plan.degradations, question, "1", choices, None, band=recipe.reasoning_length
            )
            chain = teacher.chain_for(item)
            problems = check_chain(chain, plan.degradations, "1", choices, recipe.reasoning_length, question)
            assert problems == [], (name, i, [d.name for d in plan.degradations], problems)
            assert gate_chain(chain, plan.degradations, question, choices, recipe.chain_gate) == []


def test_a_template_run_never_loads_the_openai_sdk(tmp_path):
    """Every process of a template run (the driver and each Ray worker) loads the teacher registry; the OpenAI SDK
    (a quarter of a second of imports) waits for a teacher that sends a request."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from robustgen.annotate.registry import make_teacher, teacher_class\n"
        "from robustgen.pipelines.job import SynthConfig, synth\n"
        "teacher_class('openai')\n"
        f"synth(SynthConfig(out={str(tmp_path / 'ds')!r}, limit=3))\n"
        "assert 'openai' not in sys.modules, 'the template run imported openai'\n"
        "make_teacher('openai', {})  # a teacher that will send requests\n"
        "assert 'openai' in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
