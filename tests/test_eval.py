"""`robustgen eval` against a deterministic local VLM whose answers depend on the image it receives: it names
the colour of the picture when the picture is sharp enough, and a wrong option otherwise. So accuracy falls
with blur, and every figure of the report is checked against values computed here by hand."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import stats as sps

from robustgen.degrade.apply import replay
from robustgen.eval.stats import bootstrap_ci, mcnemar_exact
from robustgen.images import data_url, decode, encode

from .annotate.fake_openai import FakeOpenAI
from .helpers import robustgen_cmd

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
NAMES = list(COLOURS)
SHARP = 1500.0  # Laplacian variance the fake VLM needs to see the picture


def picture(colour: str, seed: int) -> np.ndarray:
    """A colour field with a fine checkerboard: blur removes the texture, not the colour."""
    rng = np.random.default_rng(seed)
    img = np.zeros((96, 96, 3), np.uint8)
    img[:] = COLOURS[colour]
    checker = ((np.indices((96, 96)).sum(axis=0) // 2) % 2).astype(bool)
    img[checker] = (np.array(COLOURS[colour]) * 0.45).astype(np.uint8)
    return np.clip(img.astype(int) + rng.integers(-5, 6, img.shape), 0, 255).astype(np.uint8)


def sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def colour_of(img: np.ndarray) -> int:
    mean = img.reshape(-1, 3).mean(axis=0)
    return int(np.argmin([np.abs(mean - np.array(c) * 0.72).sum() for c in COLOURS.values()]))


def vlm_answer(img: np.ndarray) -> str:
    """The fake VLM's rule: the right colour when sharp, the next option otherwise."""
    idx = colour_of(img)
    return "ABCD"[idx] if sharpness(img) >= SHARP else "ABCD"[(idx + 1) % 4]


def vlm(body: dict) -> tuple[str, str]:
    content = body["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in content if p.get("type") == "image_url")
    img = decode(base64.b64decode(url.split(",", 1)[1]), "request")
    return f"The answer is {vlm_answer(img)}.", "stop"


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("evalset")
    rows = ["index\tquestion\tA\tB\tC\tD\tanswer\timage"]
    for i in range(24):
        colour = NAMES[i % 4]
        b64 = base64.b64encode(encode(picture(colour, i), "png")).decode()
        rows.append(
            f"{i}\tWhat colour is the picture?\t{NAMES[0]}\t{NAMES[1]}\t{NAMES[2]}\t{NAMES[3]}\t{'ABCD'[i % 4]}\t{b64}"
        )
    p = d / "Colours.tsv"
    p.write_text("\n".join(rows) + "\n")
    (d / "blur.yaml").write_text("degraders: [defocus_blur, lens_blur]\nper_image: {min: 1, max: 1}\n")
    return p


def run(*args, env=None, **kw):
    cmd = [*robustgen_cmd(), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}, **kw)


def eval_args(bench: Path, url: str, out: Path) -> list:
    return [
        "eval",
        bench,
        "--out",
        out,
        "--model",
        "fake-vlm",
        "--base-url",
        url,
        "--api-key-env",
        "NO_KEY_HERE",
        "--recipe",
        bench.parent / "blur.yaml",
        "--concurrency",
        4,
    ]


def _predictions(out: Path) -> dict[str, list[dict]]:
    return {p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in (out / "predictions").glob("*.jsonl")}


def test_report_figures_match_a_hand_computation(bench, tmp_path):
    out = tmp_path / "run"
    with FakeOpenAI(replier=vlm) as server:
        res = run(*eval_args(bench, server.url, out))
    assert res.returncode == 0, res.stderr
    preds = _predictions(out)
    assert sorted(preds) == ["100", "25", "50", "clean"] and all(len(v) == 24 for v in preds.values())
    clean_imgs = {str(i): picture(NAMES[i % 4], i) for i in range(24)}
    by_level: dict[str, dict[str, bool]] = {}
    for level, rows in preds.items():
        by_level[level] = {}
        for p in rows:
            img = clean_imgs[p["id"]] if level == "clean" else replay(clean_imgs[p["id"]], p["degradations"])
            sent = decode(base64.b64decode(data_url(img, 768)[0].split(",", 1)[1]), "sent")
            want = vlm_answer(sent) == p["answer"]
            assert p["correct"] == want, (level, p["id"])
            assert p["extracted"] == vlm_answer(sent) and p["prediction"].startswith("The answer is")
            by_level[level][p["id"]] = want
    report = json.loads((out / "report.json").read_text())
    clean_acc = np.mean(list(by_level["clean"].values()))
    for level, xs in by_level.items():
        cell = report["levels"][level]
        acc = float(np.mean(list(xs.values())))
        assert cell["n"] == 24 and cell["accuracy"] == pytest.approx(acc)
        assert cell["retention"] == pytest.approx(acc / clean_acc)
        a = [by_level["clean"][i] for i in sorted(xs)]
        b = [xs[i] for i in sorted(xs)]
        assert cell["mcnemar_p"] == pytest.approx(mcnemar_exact(a, b))
        assert cell["ci95"] == pytest.approx(list(bootstrap_ci([xs[i] for i in sorted(xs)], 0)))
    accs = [report["levels"][n]["accuracy"] for n in ("clean", "25", "50", "100")]
    assert accs[0] == 1.0 and accs[0] >= accs[1] >= accs[2] >= accs[3] and accs[3] < 0.5
    assert set(report["by_type"]) == {"defocus blur", "lens blur"} and set(report["by_stage"]) == {"acquisition"}
    for level in ("25", "50", "100"):  # one degradation per item: the types partition the items
        cells = [report["by_type"][t][level] for t in report["by_type"]]
        assert sum(c["n"] for c in cells) == 24 and all(c["few"] for c in cells)
        hits = sum(c["accuracy"] * c["n"] for c in cells)
        assert hits == pytest.approx(report["levels"][level]["accuracy"] * 24)
    # the figures do not depend on the order predictions were appended in (a resumed run appends out of order)
    from robustgen.eval.report import build_report

    path = out / "predictions" / "50.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(reversed(lines)) + "\n")
    assert build_report(out)["levels"] == json.loads((out / "report.json").read_text())["levels"]
    md = (out / "report.md").read_text()
    assert "| clean | 25 | 50 | 100 |" in md and (out / "report.html").is_file() and (out / "accuracy.png").is_file()


def test_the_statistics_agree_with_reference_implementations():
    rng = np.random.default_rng(7)
    for _ in range(20):
        a = list(rng.random(60) < 0.7)
        b = list(rng.random(60) < 0.55)
        n01 = sum(x and not y for x, y in zip(a, b, strict=True))
        n10 = sum(y and not x for x, y in zip(a, b, strict=True))
        ref = sps.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue if n01 + n10 else 1.0
        assert mcnemar_exact(a, b) == pytest.approx(ref)
    assert mcnemar_exact([True, False], [True, False]) == 1.0
    x = list(rng.random(400) < 0.6)
    lo, hi = bootstrap_ci(x, seed=1)
    ref = sps.bootstrap((np.array(x, float),), np.mean, method="percentile", random_state=1).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.02) and hi == pytest.approx(ref.high, abs=0.02)
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)


def test_a_killed_eval_resumes_without_asking_twice(bench, tmp_path):
    out = tmp_path / "run"
    with FakeOpenAI(replier=vlm) as server:
        server.delay_s = 0.05
        proc = subprocess.Popen(
            [*robustgen_cmd(), *map(str, eval_args(bench, server.url, out))],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while sum(len(v) for v in (_predictions(out) if (out / "predictions").exists() else {}).values()) < 20:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = len(server.requests)
        done = sum(len(v) for v in _predictions(out).values())
        assert 0 < done < 96
        res = run(*eval_args(bench, server.url, out))
        assert res.returncode == 0, res.stderr
        assert len(server.requests) - before <= 96 - done  # nothing answered is asked again
    preds = _predictions(out)
    for level, rows in preds.items():
        ids = [p["id"] for p in rows]
        assert len(ids) == len(set(ids)) == 24, level
    clean = tmp_path / "clean"
    with FakeOpenAI(replier=vlm) as server:
        assert run(*eval_args(bench, server.url, clean)).returncode == 0
    assert (
        json.loads((out / "report.json").read_text())["levels"]
        == json.loads((clean / "report.json").read_text())["levels"]
    )


def test_compare_two_models_on_the_same_items(bench, tmp_path):
    def oracle(body):
        return "B", "stop"  # always option B: right on a quarter of the items

    with FakeOpenAI(replier=vlm) as a, FakeOpenAI(replier=oracle) as b:
        assert run(*eval_args(bench, a.url, tmp_path / "a")).returncode == 0
        assert run(*eval_args(bench, b.url, tmp_path / "b")).returncode == 0
    res = run("eval-compare", tmp_path / "a", tmp_path / "b")
    assert res.returncode == 0, res.stderr
    cmp_ = json.loads(res.stdout)["levels"]
    assert json.loads(res.stdout)["paired"] is True
    assert cmp_["clean"]["accuracy_a"] == 1.0 and cmp_["clean"]["accuracy_b"] == 0.25
    assert cmp_["clean"]["difference"] == -0.75 and cmp_["clean"]["mcnemar_p"] < 0.001
    assert cmp_["clean"]["ci95"][1] < 0


def test_eval_usage_errors_are_one_line(tmp_path, bench):
    res = run(
        "eval", tmp_path / "missing.tsv", "--out", tmp_path / "o", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert res.returncode == 2 and "no such file" in res.stderr and "Traceback" not in res.stderr
    res = run("eval", bench, "--out", tmp_path / "o2", "--model", "m", "--api-key-env", "SURELY_UNSET_KEY")
    assert res.returncode == 2 and "SURELY_UNSET_KEY" in res.stderr


def test_the_robust_r1_protocol_is_the_papers_generator_seeded(bench, tmp_path):
    from robustgen.pipelines.corrupt import ROBUST_R1_TYPES

    types = {n for group in ROBUST_R1_TYPES.values() for n in group}
    assert len(types) == 16
    for out in ("a", "b"):
        res = run(
            "corrupt-eval", bench, "--out", tmp_path / out, "--protocol", "robust-r1", "--manifest-only", "--seed", 5
        )
        assert res.returncode == 0, res.stderr
    a, b = ((tmp_path / o / "Colours.manifest.jsonl").read_text() for o in ("a", "b"))
    assert a == b  # seeded: the same sets every time
    entries = [json.loads(x) for x in a.splitlines()[1:]]
    by_id: dict[str, list] = {}
    for e in entries:
        (d,) = e["degradations"]
        assert d["name"] in types and d["severity"] == {25: 0.23, 50: 0.45, 100: 0.9}[e["level"]]
        by_id.setdefault(e["id"], []).append(d["name"])
    assert all(len(set(v)) == 1 and len(v) == 3 for v in by_id.values())  # one type per image, every level
    res = run(
        "corrupt-eval",
        bench,
        "--out",
        tmp_path / "c",
        "--protocol",
        "robust-r1",
        "--recipe",
        bench.parent / "blur.yaml",
    )
    assert res.returncode == 2 and "drop --recipe" in res.stderr


def test_a_report_from_vlmeval_prediction_files(bench, tmp_path):
    import pandas as pd

    assert run("corrupt-eval", bench, "--out", tmp_path / "m", "--manifest-only").returncode == 0
    manifest = tmp_path / "m" / "Colours.manifest.jsonl"
    src = pd.read_csv(bench, sep="\t").drop(columns="image")
    files = []
    for level, wrong_every in (("", 0), ("_Robust_25", 0), ("_Robust_50", 4), ("_Robust_100", 2)):
        df = src.copy()
        df["prediction"] = [
            f"({'ABCD'[(i + 1) % 4]})" if wrong_every and i % wrong_every == 0 else f"Answer: {a}"
            for i, a in zip(df["index"], df["answer"], strict=True)
        ]
        path = tmp_path / f"fake-model_Colours{level}.{'xlsx' if not level else 'tsv'}"
        if path.suffix == ".xlsx":
            df.to_excel(path, index=False)
        else:
            df.to_csv(path, sep="\t", index=False)
        files.append(path)
    args = [x for f in files for x in ("--vlmeval-preds", f)]
    res = run("eval-report", *args, "--manifest", manifest, "--out", tmp_path / "r")
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [report["levels"][n]["accuracy"] for n in ("clean", "25", "50", "100")] == [1.0, 1.0, 0.75, 0.5]
    assert report["levels"]["100"]["mcnemar_p"] == pytest.approx(sps.binomtest(0, 12, 0.5).pvalue)
    preds = [json.loads(x) for x in (tmp_path / "r" / "predictions" / "50.jsonl").read_text().splitlines()]
    assert all(p["degradations"] for p in preds)  # joined to the manifest's exact records


def test_a_robustgen_dataset_folder_is_an_eval_input(tmp_path):
    ds = tmp_path / "ds"
    assert run("synth", "--out", ds, "--limit", 3).returncode == 0

    def always_a(body):
        return "A", "stop"

    with FakeOpenAI(replier=always_a) as server:
        res = run(
            "eval",
            ds,
            "--out",
            tmp_path / "run",
            "--model",
            "m",
            "--base-url",
            server.url,
            "--api-key-env",
            "NO_KEY_HERE",
            "--levels",
            "0.5",
        )
    assert res.returncode == 0, res.stderr
    preds = _predictions(tmp_path / "run")
    records = sorted(
        json.loads(x)["id"] for shard in (ds / "data").glob("*.jsonl") for x in shard.read_text().splitlines()
    )
    assert sorted(p["id"] for p in preds["clean"]) == records and sorted(preds) == ["100", "clean"]


def test_an_extraction_model_reads_replies_the_rules_cannot(bench, tmp_path):
    def chatty(body):
        text = json.dumps(body["messages"])
        if "Which option does the answer choose" in text:
            return "C", "stop"  # the extraction model's reading
        return "I would go with the third one.", "stop"

    out = tmp_path / "run"
    with FakeOpenAI(replier=chatty) as server:
        res = run(*eval_args(bench, server.url, out), "--levels", "0.5", "--extract-model", "reader")
        assert res.returncode == 0, res.stderr
        extraction = [b for b in server.requests if "Which option" in json.dumps(b["messages"])]
        assert extraction and all(b["model"] == "reader" for b in extraction)
    preds = _predictions(out)["clean"]
    assert all(p["extracted"] == "C" and p["prediction"] == "I would go with the third one." for p in preds)
    assert sum(p["correct"] for p in preds) == 6  # option C is right on a quarter of the 24 items
