"""Teacher-free perception tasks (synth --task degradation-qa): every answer is checked against the record it
came from, on a folder source (no ground truth of its own) with the offline template teacher."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from robustgen.annotate.wording import severity_word
from robustgen.pipelines.perception import CLEAN_OPTION, direction_bin

from ..helpers import robustgen_cmd


def test_perception_answers_match_the_records(image_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        for f in sorted(image_dir.glob("*.jpg")):
            shutil.copy(f, src / f"{f.stem}-{i}.jpg")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("degrader_weights: {motion_blur: 30}\nclean_fraction: 0.1\n")
    out = tmp_path / "ds"
    cmd = [*robustgen_cmd(), "synth", "--out", str(out), "--source", str(src), "--task", "degradation-qa"]
    res = subprocess.run([*cmd, "--recipe", str(recipe)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for s in sorted((out / "data").glob("*.jsonl")) for x in s.read_text().splitlines()]
    assert len(recs) == 40
    kinds = set()
    for r in recs:
        labels = {d["label"] for d in r["degradations"]}
        chosen = r["choices"][int(r["answer"])]
        if r["question"].startswith("Which of these degradations"):
            kinds.add("which" if labels else "which-clean")
            assert (chosen in labels) if labels else chosen == CLEAN_OPTION
            assert not (set(r["choices"]) - {chosen}) & labels  # the distractors are not applied
            assert len(set(r["choices"])) == 4
        elif r["question"].startswith("How strong is the "):
            kinds.add("strength")
            label = r["question"][len("How strong is the ") : -len(" in this image?")]
            (d,) = [d for d in r["degradations"] if d["label"] == label][:1]
            assert chosen == severity_word(d["severity"])
        else:
            kinds.add("direction")
            (blur,) = [d for d in r["degradations"] if d["name"] == "motion_blur"]
            assert int(r["answer"]) == direction_bin(blur["params"]["angle_deg"])
        assert r["chain"]["answer"] == r["answer"]
    assert {"which", "strength", "direction"} <= kinds
    assert subprocess.run([*robustgen_cmd(), "validate", str(out)], capture_output=True).returncode == 0


def test_direction_bins():
    assert [direction_bin(a) for a in (0, 10, 45, 90, 135, 170, 179.9)] == [0, 0, 1, 2, 3, 0, 0]


def test_the_task_is_part_of_the_run(tmp_path):
    out = Path(tmp_path) / "ds"
    run = [*robustgen_cmd(), "synth", "--out", str(out), "--limit", "2"]
    assert subprocess.run(run, capture_output=True).returncode == 0
    res = subprocess.run([*run, "--task", "degradation-qa"], capture_output=True, text=True)
    assert res.returncode == 2 and "task" in res.stderr
