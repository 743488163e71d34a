"""Teacher-free perception tasks (synth --task degradation-qa): every answer is checked against the record it
came from, on a folder source (no ground truth of its own) with the offline template teacher."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from robustgen.annotate.validate import expected_types
from robustgen.annotate.wording import severity_word
from robustgen.degrade.apply import replay
from robustgen.pipelines.perception import CLEAN_OPTION, MIN_GAP, ORDINALS, direction_bin

from ..helpers import robustgen_cmd


def _qa_dataset(image_dir: Path, tmp_path: Path, copies: int, *extra: str) -> Path:
    """``synth --task degradation-qa`` on a folder of ``copies`` x the test photos; the dataset folder."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(copies):
        for f in sorted(image_dir.glob("*.jpg")):
            shutil.copy(f, src / f"{f.stem}-{i}.jpg")
    out = tmp_path / "ds"
    cmd = [*robustgen_cmd(), "synth", "--out", str(out), "--source", str(src), "--task", "degradation-qa", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return out


def test_perception_answers_match_the_records(image_dir, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("degrader_weights: {motion_blur: 30}\nclean_fraction: 0.1\n")
    out = _qa_dataset(image_dir, tmp_path, 10, "--recipe", str(recipe))
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
            strongest = max(d["severity"] for d in r["degradations"] if d["label"] == label)
            assert chosen == severity_word(strongest)  # a repeated degrader: its strongest application
        elif r["question"].startswith("In which direction"):
            kinds.add("direction")
            (blur,) = [d for d in r["degradations"] if d["name"] == "motion_blur"]
            assert int(r["answer"]) == direction_bin(blur["params"]["angle_deg"])
        else:
            kinds.add("compare")
            assert r["question"].startswith("Which of these two versions") and len(r["extra_images"]) == 1
        assert len(r["extra_images"]) == (1 if r["question"].startswith("Which of these two") else 0)
        assert r["chain"]["answer"] == r["answer"]
    assert {"which", "strength", "direction", "compare"} <= kinds
    assert subprocess.run([*robustgen_cmd(), "validate", str(out)], capture_output=True).returncode == 0


def test_direction_bins():
    assert [direction_bin(a) for a in (0, 10, 45, 90, 135, 170, 179.9)] == [0, 0, 1, 2, 3, 0, 0]


def test_the_task_is_part_of_the_run(tmp_path):
    out = Path(tmp_path) / "ds"
    run = [*robustgen_cmd(), "synth", "--out", str(out), "--limit", "2"]
    assert subprocess.run(run, capture_output=True).returncode == 0
    res = subprocess.run([*run, "--task", "degradation-qa"], capture_output=True, text=True)
    assert res.returncode == 2 and "task" in res.stderr


def _two_image_dataset(image_dir: Path, tmp_path: Path, *extra: str) -> Path:
    return _qa_dataset(image_dir, tmp_path, 6, *extra)


def _recs(out: Path) -> list[dict]:
    return [json.loads(x) for s in sorted((out / "data").glob("*.jsonl")) for x in s.read_text().splitlines()]


def test_which_of_two_is_more_degraded_is_true_of_the_pixels(image_dir, tmp_path):
    """Each two-image record: both versions carry the same degradations drawn alike (same names, params drawn
    from one stream, same noise seeds), only weaker; the answer names the version that is more degraded by
    its severities and by its SSIM to the clean image, recomputed here from the replayed pixels, which equal
    the written files."""
    from robustgen.degrade.quality import ssim
    from robustgen.images import read_image
    from robustgen.schemas import DatasetRecord

    out = _two_image_dataset(image_dir, tmp_path, "--image-format", "png")
    pairs = [DatasetRecord.model_validate(r) for r in _recs(out) if r["extra_images"]]
    assert len(pairs) >= 5
    for rec in pairs:
        clean = read_image(rec.source_image)
        (second,) = rec.extra_images
        versions = [rec.degradations, second.degradations]
        assert [d.name for d in versions[0]] == [d.name for d in versions[1]]
        assert [d.seed for d in versions[0]] == [d.seed for d in versions[1]]  # same noise, same layout
        pixels = [read_image(out / rel) for rel in rec.images]
        for img, degs in zip(pixels, versions, strict=True):
            assert np.array_equal(img, replay(clean, degs))
        scores = [ssim(clean, img) for img in pixels]
        assert [round(x, 6) for x in scores] == [rec.quality.ssim, second.quality.ssim]
        worse = int(rec.answer)
        better = 1 - worse
        assert scores[worse] < scores[better] - MIN_GAP
        assert all(a.severity > b.severity for a, b in zip(versions[worse], versions[better], strict=True))
        assert rec.chain.types == expected_types(rec.degradations)  # TYPE describes the first image
        assert rec.choices == list(ORDINALS) and rec.chain.answer == rec.answer


def test_two_image_records_through_validate_stats_and_every_export(image_dir, tmp_path):
    out = _two_image_dataset(image_dir, tmp_path, "--keep-clean")
    recs = {r["id"]: r for r in _recs(out)}
    n_images = {i: 1 + len(r["extra_images"]) for i, r in recs.items()}
    assert set(n_images.values()) == {1, 2}
    assert subprocess.run([*robustgen_cmd(), "validate", str(out)], capture_output=True).returncode == 0
    res = subprocess.run([*robustgen_cmd(), "stats", str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and "with several images" in " ".join(res.stdout.split())
    page = (out / "stats" / "index.html").read_text()
    assert f"{sum(n_images.values())} images" in page

    def run_export(fmt: str) -> Path:
        dst = tmp_path / f"x-{fmt}"
        res = subprocess.run(
            [*robustgen_cmd(), "export", str(out), "--to", fmt, "--out", str(dst)], capture_output=True
        )
        assert res.returncode == 0, res.stderr
        return dst

    # LLaMA-Factory: one <image> per listed image, every file present
    dst = run_export("llamafactory")
    for row in json.loads((dst / "robustgen.json").read_text()):
        assert row["conversations"][0]["value"].count("<image>") == len(row["images"]) == n_images[row["id"]]
        assert all((dst / p).is_file() for p in row["images"])
    # Robust-R1 / VLM-R1 grpo_jsonl: "image" a path, or a list of paths for several images
    dst = run_export("robust-r1")
    for line in (dst / "robust_r1.jsonl").read_text().splitlines():
        row = json.loads(line)
        paths = row["image"] if isinstance(row["image"], list) else [row["image"]]
        assert row["conversations"][0]["value"].count("<image>") == len(paths) == n_images[row["id"]]
        assert all((dst / "images" / p).is_file() for p in paths)
    # the parquet exports, read with `datasets`: the second image is the record's second file
    import datasets

    for fmt in ("trl", "verl", "easyr1"):
        rows = datasets.load_dataset("parquet", data_files=str(run_export(fmt) / "train.parquet"), split="train")
        for row in rows:
            rid = row["id"] if "id" in row else row["extra_info"]["id"]
            if fmt == "trl":
                slots = [c["type"] for c in row["prompt"][0]["content"]].count("image")
            else:
                slots = (row["problem"] if fmt == "easyr1" else row["prompt"][0]["content"]).count("<image>")
            assert slots == len(row["images"]) == n_images[rid], fmt
            if n_images[rid] == 2:
                img = row["images"][1]
                raw = img["bytes"] if isinstance(img, dict) else None
                want = (out / recs[rid]["extra_images"][0]["image"]).read_bytes()
                assert raw is None or raw == want
    # robustgen.train reads the folder itself: the same rows, both images
    from robustgen.train.data import load_training_dataset

    for row in load_training_dataset(out):
        assert (
            len(row["images"]) == [c["type"] for c in row["prompt"][0]["content"]].count("image") == n_images[row["id"]]
        )
    # `check` counts the image tokens of every image
    res = subprocess.run([*robustgen_cmd(), "check", str(out), "--for", "qwen2.5-vl"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # Robust-U1: every image is its own restoration pair with the shared clean target
    dst = run_export("robust-u1")
    pairs = [json.loads(x) for x in (dst / "robust_u1.jsonl").read_text().splitlines()]
    assert len(pairs) == sum(n_images.values())
    assert all((dst / p["image"]).is_file() and (dst / p["target_image"]).is_file() for p in pairs)


def test_validate_reports_a_missing_or_escaping_second_image(image_dir, tmp_path):
    out = _two_image_dataset(image_dir, tmp_path)
    rec = next(r for r in _recs(out) if r["extra_images"])
    second = out / rec["extra_images"][0]["image"]
    second.unlink()
    res = subprocess.run([*robustgen_cmd(), "validate", str(out)], capture_output=True, text=True)
    assert res.returncode != 0 and f"({rec['id']}): image 2 " in res.stdout + res.stderr
    outside = tmp_path / "outside.jpg"
    shutil.copy(next(image_dir.glob("*.jpg")), outside)
    second.symlink_to(outside)
    res = subprocess.run([*robustgen_cmd(), "validate", str(out)], capture_output=True, text=True)
    assert res.returncode != 0 and f"({rec['id']}): image 2 " in res.stdout + res.stderr
    res = subprocess.run([*robustgen_cmd(), "export", str(out), "--to", "trl", "--out", str(tmp_path / "x")])
    assert res.returncode == 2


def test_eval_does_not_ask_a_two_image_question_of_one_clean_image(image_dir, tmp_path):
    from robustgen.eval.run import eval_rows
    from robustgen.schemas import Failure

    out = _two_image_dataset(image_dir, tmp_path)
    pairs = {r["id"] for r in _recs(out) if r["extra_images"]}
    items = list(eval_rows(str(out)))
    failed = {i.id for i in items if isinstance(i, Failure)}
    assert pairs and failed == pairs and len(items) == len(_recs(out))
    assert all("two-image" in i.reason for i in items if isinstance(i, Failure))
