"""Exports, validate, stats and corrupt-eval, each read back the way its consumer reads it."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from robustgen.degrade.quality import ssim
from robustgen.images import decode
from robustgen.schemas import parse_chain

from ..helpers import cli


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "synth"
    res = cli("synth", "--out", out, "--limit", 8)
    assert res.returncode == 0, res.stderr
    return out


def test_llamafactory_sharegpt_rules(dataset, tmp_path):
    res = cli("export", dataset, "--to", "llamafactory", "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    entry = info["robustgen"]
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "images": "images"}
    rows = json.loads((tmp_path / entry["file_name"]).read_text())
    assert len(rows) == 8
    for row in rows:
        turns = row["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"]  # ShareGPT: human first, alternating
        n_tokens = sum(t["value"].count("<image>") for t in turns)
        assert n_tokens == len(row["images"]) == 1
        assert "<TYPE>" in turns[0]["value"] and "<ANSWER_END>" in turns[0]["value"]  # the instruction
        assert not Path(row["images"][0]).is_absolute() and (tmp_path / row["images"][0]).is_file()
        parse_chain(turns[1]["value"])


def test_robust_r1_jsonl_as_grpo_jsonl_reads_it(dataset, tmp_path):
    assert cli("export", dataset, "--to", "robust-r1", "--out", tmp_path).returncode == 0
    image_folder = tmp_path / "images"
    lines = (tmp_path / "robust_r1.jsonl").read_text().splitlines()
    assert len(lines) == 8
    for line in lines:
        item = json.loads(line)
        # what VLM-R1's grpo_jsonl.py does with a row
        image_path = os.path.join(image_folder, item["image"])
        assert os.path.exists(image_path)
        question = item["conversations"][0]["value"].replace("<image>", "")
        solution = item["conversations"][1]["value"]
        assert question.strip() and "<ANSWER>" in solution and item["id"]
        chain = parse_chain(solution)
        assert chain.answer


def test_trl_parquet_loads_with_datasets(dataset, tmp_path):
    import datasets

    assert cli("export", dataset, "--to", "trl", "--out", tmp_path).returncode == 0
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train")
    assert len(ds) == 8 and {"prompt", "images", "solution", "answer", "choices", "degradations"} <= set(
        ds.column_names
    )
    row = ds[0]
    assert row["prompt"][0]["role"] == "user"
    assert [c["type"] for c in row["prompt"][0]["content"]] == ["image", "text"]
    img = row["images"][0]
    assert img.size[0] > 8 and img.mode in ("RGB", "L")
    assert parse_chain(row["solution"]).answer == row["answer"]
    assert json.loads(row["degradations"])[0]["name"]
    records = {r["id"]: r for r in _records(dataset)}
    assert all(r["choices"] == records[r["id"]]["choices"] for r in ds)  # the GRPO rewards read it


def _records(dataset: Path) -> list[dict]:
    return [json.loads(line) for shard in sorted((dataset / "data").glob("*.jsonl")) for line in shard.open()]


def test_grpo_rewards_on_the_trl_export_score_index_letter_and_option_text(dataset, tmp_path):
    """A completion may answer a multiple-choice question by index, letter or option text; all count."""
    import datasets

    from robustgen.train.rewards import trl_reward_funcs

    assert cli("export", dataset, "--to", "trl", "--out", tmp_path).returncode == 0
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train")
    mc = [r for r in ds if r["choices"]]
    assert mc, "the built-in samples hold multiple-choice questions"
    accuracy = trl_reward_funcs()[0]
    for row in mc:
        idx = int(row["answer"])
        wrong = (idx + 1) % len(row["choices"])
        cols = {k: [row[k]] * 4 for k in ("solution", "answer", "choices", "degradations")}

        def said(ans: str, head: str = row["solution"].split("<ANSWER>")[0]) -> str:
            return head + f"<ANSWER>{ans}<ANSWER_END>"

        got = accuracy(
            prompts=[row["prompt"]] * 4,
            completions=[said(str(idx)), said("ABCDEFGH"[idx]), said(row["choices"][idx]), said(str(wrong))],
            **cols,
        )
        assert got == [1.0, 1.0, 1.0, 0.0], (row["id"], row["choices"], row["answer"])


def _copy(dataset: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(dataset, dst)
    return dst


def test_validate_passes_then_reports_every_problem(dataset, tmp_path):
    assert cli("validate", dataset).returncode == 0
    broken = _copy(dataset, tmp_path)
    shard = next((broken / "data").glob("*.jsonl"))
    rows = [json.loads(line) for line in shard.read_text().splitlines()]
    (broken / rows[0]["image"]).unlink()
    rows[1]["chain"]["answer"] = "definitely wrong"
    rows[1]["response"] = rows[1]["response"].split("<ANSWER>")[0] + "<ANSWER>definitely wrong<ANSWER_END>"
    shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["counts"]["written"] = 99
    (broken / "manifest.json").write_text(json.dumps(manifest))
    res = cli("validate", broken)
    assert res.returncode == 1
    assert "is missing" in res.stderr and "does not match" in res.stderr and "counts.written" in res.stderr
    refused = cli("export", broken, "--to", "trl", "--out", tmp_path / "x")
    assert refused.returncode == 2 and "fails validation" in refused.stderr


def test_stats_writes_plots_and_a_page(dataset, tmp_path):
    res = cli("stats", dataset, "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("stages.png", "degraders.png", "severity.png", "length_vs_severity.png"):
        img = cv2.imread(str(tmp_path / name))
        assert img is not None and img.shape[0] > 150 and img.shape[1] > 300 and img.std() > 5
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and page.count("data:image/jpeg;base64,") == 16
    assert page.count("data-role='degraded'") == 8 and page.count("data-role='clean'") == 8  # side by side
    assert "&lt;TYPE&gt;" in page and "astronaut-suit" in page


def _tsv(tmp_path: Path, n: int = 4) -> Path:
    from robustgen.images import load_image

    names = ["astronaut", "coffee", "chelsea", "rocket"]
    lines = ["index\timage\tquestion\tA\tB\tanswer\tcategory"]
    for i in range(n):
        img = cv2.resize(load_image(f"skimage:{names[i % 4]}"), (192, 144))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        b64 = base64.b64encode(buf.tobytes()).decode()
        lines.append(f'{i}\t{b64}\tWhat is it, "really"?\tyes\tno\t{"AB"[i % 2]}\tcat {i}')
    p = tmp_path / "MMBench_DEV.tsv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_corrupt_eval_tsv_keeps_rows_and_columns_and_levels_are_monotone(tmp_path):
    src = _tsv(tmp_path)
    res = cli("corrupt-eval", src, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    original = pd.read_csv(src, sep="\t")
    outs = {n: pd.read_csv(tmp_path / "out" / f"MMBench_DEV_Robust_{n}.tsv", sep="\t") for n in (25, 50, 100)}
    scores = {}
    for n, df in outs.items():
        assert len(df) == len(original)
        pd.testing.assert_frame_equal(df.drop(columns="image"), original.drop(columns="image"))
        scores[n] = []
        for a, b in zip(original["image"], df["image"], strict=True):
            clean, bad = decode(base64.b64decode(a), "a"), decode(base64.b64decode(b), "b")
            assert clean.shape == bad.shape
            scores[n].append(ssim(clean, bad))
        side = [
            json.loads(x)
            for x in (tmp_path / "out" / f"MMBench_DEV_Robust_{n}.degradations.jsonl").read_text().splitlines()
        ]
        assert len(side) == len(df) and all(s["degradations"] for s in side)
    assert np.mean(scores[25]) > np.mean(scores[50]) > np.mean(scores[100])
    # the same degraders per image at every level
    sides = {
        n: [
            json.loads(x)
            for x in (tmp_path / "out" / f"MMBench_DEV_Robust_{n}.degradations.jsonl").read_text().splitlines()
        ]
        for n in (25, 100)
    }
    for a, b in zip(sides[25], sides[100], strict=True):
        assert [d["name"] for d in a["degradations"]] == [d["name"] for d in b["degradations"]]
        assert all(d["severity"] == 0.23 for d in a["degradations"])


def test_corrupt_eval_folder(tmp_path):
    from robustgen.images import load_image, write_image

    src = tmp_path / "imgs"
    write_image(src / "a.png", cv2.resize(load_image("skimage:coffee"), (96, 64)))
    write_image(src / "sub" / "b.jpg", cv2.resize(load_image("skimage:rocket"), (96, 64)))
    res = cli("corrupt-eval", src, "--out", tmp_path / "out", "--levels", "0.5,1.0")
    assert res.returncode == 0, res.stderr
    for n in (50, 100):
        d = tmp_path / "out" / f"imgs_Robust_{n}"
        assert (d / "a.png").is_file() and (d / "sub" / "b.jpg").is_file()
        assert len((d / "degradations.jsonl").read_text().splitlines()) == 2


def test_verl_parquet_as_rlhfdataset_reads_it(dataset, tmp_path):
    """verl's RLHFDataset loads the parquet with `datasets`, splits each message's text on <image>/<video>
    into typed parts and opens every image dict's bytes with PIL: the same steps here."""
    import io
    import re

    import datasets
    from PIL import Image

    res = cli("export", dataset, "--to", "verl", "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"))["train"]
    assert len(rows) == 8
    for i, row in enumerate(rows):
        assert row["data_source"] == "robustgen" and row["ability"] and row["reward_model"]["style"] == "rule"
        parts = [p for m in row["prompt"] for p in re.split("(<image>|<video>)", m["content"])]
        assert parts.count("<image>") == len(row["images"]) == 1 and "<video>" not in parts
        with Image.open(io.BytesIO(row["images"][0]["bytes"])) as im:
            assert im.convert("RGB").size[0] > 0
        info = row["extra_info"]
        assert info["index"] == i and row["reward_model"]["ground_truth"] == info["answer"]
        assert json.loads(info["degradations"]) and parse_chain(info["solution"]).answer == info["answer"]


def test_easyr1_parquet_has_its_keys_and_one_image_per_placeholder(dataset, tmp_path):
    import datasets

    assert cli("export", dataset, "--to", "easyr1", "--out", tmp_path).returncode == 0
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"))["train"]
    assert len(rows) == 8 and {"problem", "answer", "images"} <= set(rows.column_names)
    for row in rows:
        assert row["problem"].count("<image>") == len(row["images"]) == 1
        assert row["answer"] == parse_chain(row["solution"]).answer


def test_keep_clean_and_robust_u1_pairs(tmp_path, image_dir):
    """--keep-clean stores each clean image once (content-addressed); --to robust-u1 pairs degraded and clean."""
    from robustgen.images import read_image

    src = tmp_path / "rows.jsonl"
    shutil.copy(image_dir / "coffee.jpg", tmp_path / "a.jpg")
    rows = [{"id": f"r{i}", "image": "a.jpg", "question": "What drink?", "answer": "coffee"} for i in range(3)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = tmp_path / "ds"
    res = cli("synth", "--out", ds, "--source", src, "--keep-clean")
    assert res.returncode == 0, res.stderr
    assert len(list((ds / "clean").rglob("*.png"))) == 1  # one source image, stored once
    assert cli("validate", ds).returncode == 0
    res = cli("export", ds, "--to", "robust-u1", "--out", tmp_path / "u1")
    assert res.returncode == 0, res.stderr
    pairs = [json.loads(x) for x in (tmp_path / "u1" / "robust_u1.jsonl").read_text().splitlines()]
    assert len(pairs) == 3
    clean = read_image(image_dir / "coffee.jpg")
    for p in pairs:
        assert p["prompt"].count("<image>") == 1
        assert np.array_equal(read_image(tmp_path / "u1" / p["target_image"]), clean)  # lossless: the exact pixels
        assert (tmp_path / "u1" / p["image"]).is_file()
    plain = tmp_path / "plain"
    assert cli("synth", "--out", plain, "--source", src).returncode == 0
    res = cli("export", plain, "--to", "robust-u1", "--out", tmp_path / "u1b")
    assert res.returncode == 2 and "--keep-clean" in res.stderr


def test_check_reports_what_would_break_training(dataset, tmp_path):
    from robustgen.pipelines.check import image_tokens, internvl_tiles, qwen_resize

    assert qwen_resize(512, 512) == (504, 504) and image_tokens("qwen2-vl", 512, 512) == 324
    hb, wb = qwen_resize(3000, 4000, max_pixels=1003520)
    assert hb % 28 == wb % 28 == 0 and hb * wb <= 1003520
    assert internvl_tiles(512, 512) == 1 and internvl_tiles(448, 1344) == 4 and image_tokens("llava", 9, 9) == 576

    res = cli("check", dataset, "--for", "qwen2.5-vl")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["records"] == 8 and summary["broken"] == {} and summary["max_image_tokens"] > 0

    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    shard = next((broken / "data").glob("*.jsonl"))
    recs = [json.loads(x) for x in shard.read_text().splitlines()]
    recs[0]["question"] = "Look at <image> closely: " + recs[0]["question"]
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = cli("check", broken, "--for", "internvl", "--max-prompt-length", 200, "--max-completion-length", 50)
    assert res.returncode == 1
    counts = json.loads(res.stdout)["broken"]
    assert counts["image literal"] == 1 and counts["prompt length"] == 8 and counts["completion length"] == 8
    assert f"{recs[0]['id']}: an <image>/<video> literal in the question" in res.stderr


def test_exports_downscale_to_max_pixels(dataset, tmp_path):
    import io

    import datasets
    from PIL import Image

    res = cli("export", dataset, "--to", "trl", "--out", tmp_path / "trl", "--max-pixels", 4096)
    assert res.returncode == 0, res.stderr
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "trl" / "train.parquet"))["train"]
    for row in rows:
        w, h = row["images"][0].size
        assert w * h <= 4096
    assert (
        cli("export", dataset, "--to", "llamafactory", "--out", tmp_path / "lf", "--max-pixels", 4096).returncode == 0
    )
    for p in (tmp_path / "lf" / "images").rglob("*.jpg"):
        with Image.open(io.BytesIO(p.read_bytes())) as im:
            assert im.size[0] * im.size[1] <= 4096
    res = cli("check", dataset, "--for", "llava", "--max-pixels", 4096)
    assert res.returncode == 1 and json.loads(res.stdout)["broken"]["pixels"] == 8


def test_a_synth_folder_loads_with_datasets_and_states_its_provenance(tmp_path):
    import datasets

    ds_dir = tmp_path / "ds"
    assert cli("synth", "--out", ds_dir, "--limit", 5, "--license", "cc-by-4.0").returncode == 0
    # datasets caches a local folder under its name: a fresh cache, as after any re-run into the same folder
    ds = datasets.load_dataset(str(ds_dir), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 5 and ds[0]["image"].size[0] > 0
    recs = {
        json.loads(x)["id"]: json.loads(x)
        for s in (ds_dir / "data").glob("*.jsonl")
        for x in s.read_text().splitlines()
    }
    for row in ds:
        rec = recs[row["id"]]
        assert row["question"] == rec["question"] and row["answer"] == rec["answer"]
        assert json.loads(row["degradations"]) == rec["degradations"] and json.loads(row["chain"]) == rec["chain"]
    card = (ds_dir / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "seed 0" in card and "teacher: template" in card
    assert cli("validate", ds_dir).returncode == 0
    (ds_dir / "README.md").unlink()
    res = cli("card", ds_dir)
    assert res.returncode == 0 and "license: cc-by-4.0" in (ds_dir / "README.md").read_text()  # kept in the manifest


def test_push_uploads_exactly_the_dataset_files_without_network(tmp_path, monkeypatch):
    """The upload plan huggingface_hub builds (create_commit's operations), captured instead of sent."""
    from huggingface_hub import HfApi
    from typer.testing import CliRunner

    from robustgen.cli import app

    ds = tmp_path / "ds"
    assert cli("synth", "--out", ds, "--limit", 3, "--export", "trl").returncode == 0
    seen: dict = {}

    def fake_create_repo(self, repo_id, **kw):
        seen["repo"] = (repo_id, kw.get("repo_type"), kw.get("private"))

    def fake_create_commit(self, repo_id, operations, **kw):
        seen["paths"] = sorted(op.path_in_repo for op in operations)
        seen["card"] = next(Path(op.path_or_fileobj).read_text() for op in operations if op.path_in_repo == "README.md")

        class Info:
            commit_url = f"https://huggingface.co/datasets/{repo_id}/commit/0"

        return Info()

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "create_commit", fake_create_commit)
    res = CliRunner().invoke(app, ["push", str(ds), "--repo", "someone/robust-data", "--private"])
    assert res.exit_code == 0, res.output
    assert seen["repo"] == ("someone/robust-data", "dataset", True)
    paths = seen["paths"]
    assert "README.md" in paths and "metadata.jsonl" in paths and "manifest.json" in paths
    assert sum(p.startswith("images/") for p in paths) == 3 and any(p.startswith("data/") for p in paths)
    assert not any(p.startswith((".work/", "exports/")) for p in paths)
    assert "configs:" in seen["card"]  # the card the hub would have validated
