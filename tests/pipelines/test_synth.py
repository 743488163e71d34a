"""`robustgen synth` as users run it: real sources, real Ray, real files, real kills."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from robustgen.images import read_image
from robustgen.schemas import ReasoningChain, parse_chain, render_chain

from ..annotate.fake_openai import FakeOpenAI
from ..helpers import fake_teacher_args, free_port, robustgen_cmd

SECRET = "sk-synth-test-SECRET-0987654321"
RECORD_KEYS = {
    "id",
    "image",
    "source_image",
    "width",
    "height",
    "question",
    "answer",
    "choices",
    "degradations",
    "chain",
    "response",
    "teacher",
    "quality",
}


def synth(*args, env=None, timeout=600, **kw):
    cmd = [*robustgen_cmd(), "synth", *map(str, args)]
    full_env = {**os.environ, "ROBUSTGEN_TEST_KEY": SECRET, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, **kw)


def records(out: Path) -> list[dict]:
    rows = []
    for shard in sorted((out / "data").glob("*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["id"])


def failures(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines() if line.strip()]


def image_bytes(out: Path) -> dict[str, bytes]:
    return {r["id"]: (out / r["image"]).read_bytes() for r in records(out)}


def test_main_command_builds_the_documented_layout(tmp_path):
    out = tmp_path / "ds"
    res = synth("--out", out)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    recs = records(out)
    assert manifest["counts"] == {"total": 14, "written": 14, "failed": 0} and len(recs) == 14
    assert {"robustgen", "numpy", "opencv", "albumentations"} <= set(manifest["versions"])
    assert manifest["teacher"]["kind"] == "template" and manifest["seed"] == 0
    assert failures(out) == []
    for r in recs:
        assert RECORD_KEYS <= set(r)
        img = read_image(out / r["image"])
        assert img.shape == (r["height"], r["width"], 3) and r["image"].endswith(".jpg")
        chain = ReasoningChain.model_validate(r["chain"])
        assert parse_chain(r["response"]) == chain and render_chain(chain) == r["response"]
        assert chain.types == [(d["label"], round(d["severity"], 2)) for d in r["degradations"]]
        assert r["quality"]["psnr"] > 0 and r["quality"]["ssim"] is None  # SSIM only with --ssim
        assert r["teacher"]["kind"] == "template"


def test_every_row_ends_written_or_failed_with_a_reason(bad_jsonl, tmp_path):
    out = tmp_path / "ds"
    res = synth("--out", out, "--source", bad_jsonl, "--image-format", "png")
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    recs, fails = records(out), failures(out)
    ids = [r["id"] for r in recs] + [f["id"] for f in fails]
    assert len(ids) == len(set(ids)) == 12 + 9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"total": 21, "written": 12, "failed": 9}
    reasons = {f["id"]: f["reason"] for f in fails}
    assert "empty file" in reasons["zero"]
    assert "not a readable image" in reasons["notimage"]
    assert "truncated" in reasons["truncated"]
    assert "no such file" in reasons["missing"]
    assert "safety limit" in reasons["bomb"] or "decompression bomb" in reasons["bomb"]
    assert "escapes its folder" in reasons["escape"] and "escapes its folder" in reasons["absolute"]
    assert "missing 'question'" in reasons["noquestion"]
    assert any("malformed JSON line" in r for r in reasons.values())
    assert all("\n" not in r for r in reasons.values())
    assert all(r["image"].endswith(".png") for r in recs)


def test_same_dataset_with_one_or_two_workers_and_any_batch_size(good_jsonl, tmp_path):
    a, b = tmp_path / "w1", tmp_path / "w2"
    assert synth("--out", a, "--source", good_jsonl, "--workers", 1, "--batch-size", 5).returncode == 0
    assert synth("--out", b, "--source", good_jsonl, "--workers", 2, "--batch-size", 2).returncode == 0
    assert records(a) == records(b) and len(records(a)) == 12
    assert image_bytes(a) == image_bytes(b)
    # one shard per batch: the batch size is honoured, and does not change the dataset
    assert len(list((a / "data").glob("*.jsonl"))) == 3 and len(list((b / "data").glob("*.jsonl"))) == 6


def test_the_same_bytes_on_ray_and_in_process(image_dir, tmp_path):
    """Whichever executor the plan picks (Ray Data with the driver as one lane, or this process alone), and
    whoever processes a row, the dataset is the same, byte for byte."""
    import cv2

    big = tmp_path / "big"
    big.mkdir()
    for f in image_dir.glob("*.jpg"):
        cv2.imwrite(str(big / f.name), cv2.resize(cv2.imread(str(f)), (640, 640)))
    src = _numbered_source(big, tmp_path, 300)
    a, b = tmp_path / "a", tmp_path / "b"
    assert synth("--out", a, "--source", src, "--workers", 2, "--executor", "ray").returncode == 0
    assert synth("--out", b, "--source", src, "--workers", 1, "--batch-size", 7).returncode == 0
    on_ray, alone = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert on_ray["run"]["executor"] == "ray" and on_ray["run"]["driver_works"] is True
    assert on_ray["timings"]["rows_in_driver"] + on_ray["timings"]["rows_on_ray"] == 300
    assert alone["run"]["executor"] == "in-process" and "--workers 1" in alone["run"]["reason"]
    assert alone["timings"]["rows_in_driver"] == 300
    assert records(a) == records(b) and len(records(a)) == 300
    assert image_bytes(a) == image_bytes(b)


def test_ssim_is_measured_when_asked_and_a_resume_cannot_change_it(tmp_path):
    from robustgen.degrade.apply import replay
    from robustgen.degrade.quality import psnr, ssim
    from robustgen.images import load_image

    out = tmp_path / "ds"
    res = synth("--out", out, "--limit", 4, "--ssim")
    assert res.returncode == 0, res.stderr
    recs = records(out)
    assert len(recs) == 4
    for r in recs:  # the pixels before encoding: the clean image replayed through the record
        clean = load_image(r["source_image"])
        degraded = replay(clean, r["degradations"])
        assert r["quality"]["ssim"] == round(ssim(clean, degraded), 6) and 0 < r["quality"]["ssim"] <= 1
        assert r["quality"]["psnr"] == round(psnr(clean, degraded), 4)
    other = synth("--out", out, "--limit", 4)
    assert other.returncode == 2 and "different settings (ssim)" in other.stderr
    again = synth("--out", out, "--limit", 4, "--ssim")
    assert again.returncode == 0 and "4 from an earlier run" in again.stdout and records(out) == recs


def test_rerun_refuses_other_settings_and_overwrite_starts_over(tmp_path):
    out = tmp_path / "ds"
    assert synth("--out", out, "--limit", 3).returncode == 0
    again = synth("--out", out, "--limit", 3)
    assert again.returncode == 0 and "3 from an earlier run" in again.stdout
    other = synth("--out", out, "--limit", 3, "--seed", 1)
    assert other.returncode == 2 and "different settings (seed)" in other.stderr
    assert synth("--out", out, "--limit", 3, "--seed", 1, "--overwrite").returncode == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    refused = synth("--out", junk)
    assert refused.returncode == 2 and "holds no robustgen run" in refused.stderr


def _numbered_source(image_dir: Path, tmp_path: Path, n: int) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    names = sorted(p.name for p in image_dir.glob("*.jpg"))
    for name in names:
        (src / name).write_bytes((image_dir / name).read_bytes())
    rows = [
        {
            "id": f"r{i:04d}" if n > 1000 else f"r{i:03d}",
            "image": names[i % len(names)],
            "question": f"Which photo is #{i:03d}?",
            "answer": "1",
            "choices": ["this one", "that one"],
        }
        for i in range(n)
    ]
    p = src / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _requested_ids(server: FakeOpenAI) -> list[str]:
    return [m.group(1) for r in server.requests if (m := re.search(r"#(\d{3})\?", json.dumps(r["messages"])))]


def test_sigkill_then_rerun_completes_without_redoing_finished_samples(image_dir, tmp_path):
    n = 60
    src = _numbered_source(image_dir, tmp_path, n)
    with FakeOpenAI() as server:
        server.delay_s = 0.1  # 60 rows at 2 in flight: ~3 s of teacher time, a window to kill in
        args = [
            "--source",
            src,
            *fake_teacher_args(server.url),
            "--concurrency",
            "2",
            "--batch-size",
            "4",
            "--workers",
            "2",
        ]
        killed = tmp_path / "killed"
        cmd = [
            *robustgen_cmd(),
            "synth",
            "--out",
            str(killed),
            *map(str, args),
        ]
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, "ROBUSTGEN_TEST_KEY": SECRET},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not list((killed / "data").glob("*.jsonl")) if (killed / "data").exists() else True:
            assert time.monotonic() < deadline and proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, 1.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)
        finished = {r["id"]: (killed / r["image"]).stat().st_mtime_ns for r in records(killed)}
        assert 0 < len(finished) < n, "kill came too late to test a resume"
        asked_before = len(server.requests)

        res = synth("--out", killed, *args)
        assert res.returncode == 0, res.stderr
        late = [f"r{i}" for i in _requested_ids(server)[asked_before:]]
        assert not set(late) & set(finished), "a finished sample was sent to the teacher again"
        for sid, mtime in finished.items():
            rec = next(r for r in records(killed) if r["id"] == sid)
            assert (killed / rec["image"]).stat().st_mtime_ns == mtime, f"{sid} was degraded again"

        clean = tmp_path / "clean"
        assert synth("--out", clean, *args).returncode == 0

    def strip(recs):  # usage differs (the resumed run may hit the cache); the dataset must not
        return [{k: v for k, v in r.items() if k != "teacher"} | {"chain": r["chain"]} for r in recs]

    assert strip(records(killed)) == strip(records(clean)) and len(records(clean)) == n
    assert image_bytes(killed) == image_bytes(clean)
    assert failures(killed) == [] and not list(killed.rglob(".tmp-*"))
    for f in killed.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f"the API key leaked into {f}"


def test_two_node_cluster_gives_the_local_dataset(tmp_path):
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    head = subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    try:
        assert head.returncode == 0, head.stderr[-2000:]
        node = subprocess.run(
            [ray, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--disable-usage-stats"],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert node.returncode == 0, node.stderr[-2000:]
        cluster_out = tmp_path / "cluster"
        res = synth(
            "--out", f"file://{cluster_out}", "--ray-address", f"127.0.0.1:{port}", env={"RAY_AUTH_MODE": "token"}
        )
        assert res.returncode == 0, res.stderr[-3000:]
        # a plain run (no --ray-address) while that cluster is up starts its own embedded Ray, not an error
        local = tmp_path / "local"
        res = synth("--out", local, "--executor", "ray")
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
    assert records(cluster_out) == records(local) and len(records(local)) == 14
    assert image_bytes(cluster_out) == image_bytes(local)


def test_dry_run_counts_and_estimates_without_sending(tmp_path):
    res = synth("--out", tmp_path / "t", "--dry-run")
    assert res.returncode == 0 and "14 samples" in res.stdout and "degradations in environment" in res.stdout
    assert not (tmp_path / "t").exists()
    with FakeOpenAI() as server:
        res = synth(
            "--out",
            tmp_path / "o",
            "--dry-run",
            *fake_teacher_args(server.url),
            "--teacher-set",
            "price_in=2.5",
            "--teacher-set",
            "price_out=10",
        )
        assert res.returncode == 0, res.stderr
        assert "estimated prompt tokens" in res.stdout and "estimated cost" in res.stdout
        assert server.requests == []


def test_folder_source_needs_a_teacher_that_can_answer(image_dir, tmp_path):
    res = synth("--out", tmp_path / "f", "--source", image_dir)
    assert res.returncode == 2 and "use --teacher openai" in res.stderr
    with FakeOpenAI() as server:
        res = synth(
            "--out",
            tmp_path / "g",
            "--source",
            image_dir,
            *fake_teacher_args(server.url),
            "--question",
            "What is shown?",
        )
        assert res.returncode == 0, res.stderr
    recs = records(tmp_path / "g")
    assert len(recs) == 4 and all(r["answer"] is None and r["question"] == "What is shown?" for r in recs)


def test_failures_stay_failed_on_resume_unless_retry_failed(good_jsonl, tmp_path):
    from ..annotate.fake_openai import good_reply

    def wrong(body):
        content, finish = good_reply(body)
        data = json.loads(content)
        if "answer" in data:
            data["answer"] = "0"  # every row's truth is "1"
        return json.dumps(data), finish

    with FakeOpenAI(replier=wrong) as server:
        args = [
            "--out",
            tmp_path / "ds",
            "--source",
            good_jsonl,
            "--limit",
            4,
            *fake_teacher_args(server.url),
            "--teacher-set",
            "max_reasks=1",
            "--batch-size",
            3,
        ]
        first = synth(*args)
        assert first.returncode == 3 and len(failures(tmp_path / "ds")) == 4
        n = len(server.requests)
        again = synth(*args)
        assert again.returncode == 3 and len(server.requests) == n  # failures are final on a plain resume
        server.replier = good_reply
        retried = synth(*args, "--retry-failed")
        assert retried.returncode == 0, retried.stderr
    assert len(records(tmp_path / "ds")) == 4 and failures(tmp_path / "ds") == []
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["counts"] == {"total": 4, "written": 4, "failed": 0}


def test_object_store_output_on_a_two_node_cluster_with_kill_and_resume(image_dir, tmp_path):
    """``--out s3://...`` (endpoint and credentials from the environment, as pyarrow reads them) on a 2-node
    local Ray cluster against an S3-compatible server: the chunks carry the image bytes, so the nodes share
    nothing but the object store; the records and image bytes equal a local run's; a run killed mid-way and
    resumed on the object store finishes with no duplicate."""
    import pyarrow.fs as pafs

    s3_port, ray_port = free_port(), free_port()
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "RAY_AUTH_MODE": "token",
    }
    env = {**os.environ, **aws}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(s3_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                s3 = pafs.S3FileSystem(
                    endpoint_override=aws["AWS_ENDPOINT_URL"],
                    access_key="testing",
                    secret_key="testing",
                    region="us-east-1",
                    allow_bucket_creation=True,
                )
                s3.create_dir("bucket")
                break
            except OSError:
                assert time.monotonic() < deadline, "the S3 server did not come up"
                time.sleep(0.5)
        common = ["--num-cpus=1", "--disable-usage-stats"]
        head = subprocess.run(
            [ray, "start", "--head", f"--port={ray_port}", "--include-dashboard=false", *common],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert head.returncode == 0, head.stderr[-2000:]
        node = subprocess.run(
            [ray, "start", f"--address=127.0.0.1:{ray_port}", *common],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert node.returncode == 0, node.stderr[-2000:]
        src = _numbered_source(image_dir, tmp_path, 160)
        args = ["--out", "s3://bucket/ds", "--source", src, "--ray-address", f"127.0.0.1:{ray_port}", "--batch-size", 4]
        cmd = [*robustgen_cmd(), "synth", *map(str, args)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            shards = [
                i
                for i in s3.get_file_info(pafs.FileSelector("bucket/ds", recursive=True, allow_not_found=True))
                if i.path.startswith("bucket/ds/data/")
            ]
            if len(shards) >= 3:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.1)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        resumed = int(re.search(r"\((\d+) from an earlier run\)", res.stdout).group(1))
        assert 0 < resumed < 160, res.stdout
        local_tmp = tmp_path / "s3copy"
        pafs.copy_files(
            "bucket/ds", str(local_tmp), source_filesystem=s3, destination_filesystem=pafs.LocalFileSystem()
        )
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
        server.terminate()
        server.wait(timeout=30)
    lines = [line for shard in (local_tmp / "data").glob("*.jsonl") for line in shard.read_text().splitlines()]
    ids = [json.loads(line)["id"] for line in lines if line.strip()]
    assert len(ids) == len(set(ids)) == 160, "a sample was lost or written twice"
    assert not list(local_tmp.rglob(".tmp-*"))
    local = tmp_path / "local"
    assert synth("--out", local, "--source", src, "--batch-size", 4).returncode == 0
    assert records(local_tmp) == records(local)
    assert image_bytes(local_tmp) == image_bytes(local)
    assert json.loads((local_tmp / "manifest.json").read_text())["counts"]["written"] == 160


def test_a_second_run_into_a_busy_folder_is_refused(image_dir, tmp_path):
    """Two writers in one folder (even with another --batch-size) would interleave shards: the second is
    refused with one line while the first holds the folder, and the first finishes untouched."""
    src = _numbered_source(image_dir, tmp_path, 30)
    out = tmp_path / "ds"
    with FakeOpenAI() as server:
        server.delay_s = 0.3  # 30 rows one at a time: ~9 s of holding the folder, while the two others try it
        args = ["--out", out, "--source", src, *fake_teacher_args(server.url), "--concurrency", "1"]
        cmd = [*robustgen_cmd(), "synth", *map(str, args)]
        first = subprocess.Popen(
            cmd, env={**os.environ, "ROBUSTGEN_TEST_KEY": SECRET}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while not (out / ".work" / "run.json").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = synth(*args, "--batch-size", 3)
        overwrite = synth(*args, "--overwrite")
        assert first.wait(timeout=600) == 0
    for res in (second, overwrite):
        assert res.returncode == 2 and "another robustgen run is writing into this folder" in res.stderr
        assert f"pid {first.pid} on " in res.stderr  # the holder is named
    assert not (out / ".robustgen-lock").exists()  # the note goes with the run
    ids = [r["id"] for r in records(out)]
    assert len(ids) == len(set(ids)) == 30


def _ray_processes_of(ray_tmp: Path, grace_s: float = 3.0) -> list[str]:
    """The live processes whose command line names this Ray temp dir (GCS, raylet, monitors), from /proc."""
    deadline = time.monotonic() + grace_s
    while True:
        left = []
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue  # not a process, or gone meanwhile
            if state != "Z" and str(ray_tmp) in cmd:
                left.append(cmd[:80])
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_no_secret_on_disk_after_a_run_on_ray(image_dir, tmp_path):
    """The key (from the environment) and a password inside --base-url appear in no file the run touches: the
    output folder, the teacher cache, Ray's whole temp dir (session logs included), nor the console."""
    import tempfile

    src = _numbered_source(image_dir, tmp_path, 12)
    ray_tmp = Path(tempfile.mkdtemp(prefix="rg", dir="/tmp"))  # short: Ray's socket paths must fit
    password = "pw-SECRET-in-url-5550123"
    try:
        with FakeOpenAI() as server:
            url = server.url.replace("http://", f"http://user:{password}@")
            res = synth(
                "--out",
                tmp_path / "ds",
                "--source",
                src,
                *fake_teacher_args(url),
                "--workers",
                2,
                "--executor",
                "ray",
                env={"RAY_TMPDIR": str(ray_tmp)},
            )
        assert res.returncode == 0, res.stderr
        assert _ray_processes_of(ray_tmp) == [], "Ray's processes outlived the command"
        # no log line of Ray's C++ core on the console (it logged an error for every restartable actor)
        assert not re.search(r"^\[\d{4}-\d\d-\d\d [^\]]* [EWF] \d+ \d+\]", res.stderr, re.M), res.stderr
        assert len(records(tmp_path / "ds")) == 12
        sessions = list(ray_tmp.rglob("session_*"))
        assert sessions, "the run did not start Ray, so Ray's logs were not tested"
        assert list(ray_tmp.rglob("*.log")) or list(ray_tmp.rglob("*.out")), "Ray wrote no logs to search"
        for secret in (SECRET, password):
            assert secret not in res.stdout + res.stderr
            for root in (tmp_path / "ds", ray_tmp):
                for f in root.rglob("*"):
                    if f.is_file() and not f.is_symlink():
                        try:
                            data = f.read_bytes()
                        except OSError:
                            continue  # sockets and the like
                        assert secret.encode() not in data, f"a secret leaked into {f}"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_the_plan_is_decided_once_said_first_and_recorded(tmp_path):
    """A small run stays in this process, a forced one goes to Ray; either way the first console line and the
    manifest say where it ran and why. Nothing but the command's own options chooses."""
    small = synth("--out", tmp_path / "small", "--limit", 6)
    assert small.returncode == 0, small.stderr
    first = small.stderr.splitlines()[0]
    assert first == "run: in this process (6 rows: at most 500, fewer than Ray's start-up would pay for)"
    run = json.loads((tmp_path / "small" / "manifest.json").read_text())["run"]
    assert run["executor"] == "in-process" and run["workers"] == 1
    forced = synth("--out", tmp_path / "ray", "--limit", 6, "--executor", "ray")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.splitlines()[0] == "run: on Ray Data (--executor ray)"
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["run"]["executor"] == "ray"
    assert records(tmp_path / "small") == records(tmp_path / "ray")
    bad = synth("--out", tmp_path / "x", "--executor", "in-process", "--ray-address", "127.0.0.1:1")
    assert bad.returncode == 2 and "--executor in-process" in bad.stderr and "Traceback" not in bad.stderr


def test_one_worker_with_a_pooled_teacher_finishes_in_process_and_on_ray(tmp_path):
    """``--workers 1 --teacher openai`` used to wait forever (Ray had one CPU, the teacher's actor held half of it,
    the degrade task waited for a whole one). The plan runs it in this process; forced onto a one-CPU Ray, the
    actor holds no CPU of its own. Both give the same dataset."""
    with FakeOpenAI() as server:
        alone = synth(
            "--out", tmp_path / "a", "--limit", 6, "--workers", 1, *fake_teacher_args(server.url), timeout=180
        )
        assert alone.returncode == 0, alone.stderr[-3000:]
        assert alone.stderr.splitlines()[0] == "run: in this process (--workers 1)"
        forced = synth(
            "--out",
            tmp_path / "r",
            "--limit",
            6,
            "--workers",
            1,
            "--executor",
            "ray",
            *fake_teacher_args(server.url),
            timeout=180,
        )
        assert forced.returncode == 0, forced.stderr[-3000:]
    assert len(records(tmp_path / "a")) == 6

    def content(recs):  # usage differs (the second run hits the cache); the dataset must not
        return [{k: v for k, v in r.items() if k != "teacher"} for r in recs]

    assert content(records(tmp_path / "a")) == content(records(tmp_path / "r"))
    assert image_bytes(tmp_path / "a") == image_bytes(tmp_path / "r")
