"""`robustgen view` driven through a real headless browser (Debian's chromium and chromedriver, with Selenium):
the grid and its filters, a record page with every image loaded, the recipe explorer's slider, an eval run's
flips against the predictions on disk, and the hostile cases (a question holding markup, encoded `..`, absolute
paths, a link out of images/, a write request). The server is the installed command, stopped by SIGTERM."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from robustgen.images import load_image, write_image

from ..annotate.fake_openai import FakeOpenAI
from ..helpers import cli, robustgen_cmd
from ..test_eval import bench, eval_args, vlm  # noqa: F401  (bench is a fixture)

HOSTILE = "<img src=x onerror=\"window.pwned=1;document.title='pwned'\"><script>window.pwned=2</script>"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "view-record.png"


def _tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` with its SHA-256 (links by their target text)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _records(ds: Path) -> list[dict]:
    return [json.loads(x) for s in sorted((ds / "data").glob("*.jsonl")) for x in s.read_text().splitlines() if x]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset of five photos (one question holding markup, one row whose image is missing), one record's chain
    marked as turned down by the gate, and one record whose image is a link to a file outside the folder."""
    d = tmp_path_factory.mktemp("viewds")
    src = d / "src"
    rows = []
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")):
        write_image(src / f"{name}.png", load_image(f"skimage:{name}")[:256, :256])
        question = HOSTILE if name == "coffee" else f"What is in picture {i}?"
        rows.append({"id": f"r{i}", "image": f"{name}.png", "question": question, "answer": "yes"})
    rows.append({"id": "lost", "image": "nowhere.png", "question": "Where?", "answer": "here"})
    (src / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = d / "ds"
    res = cli("synth", "--out", out, "--source", src / "rows.jsonl", "--workers", 1, "--keep-clean")
    assert res.returncode == 3, res.stderr  # the lost row is a failure, the rest are written
    shard = next((out / "data").glob("*.jsonl"))
    lines = shard.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    for r in recs:
        if r["id"] == "r2":
            r["chain_quality"]["passed"] = False
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    victim = d / "victim.png"
    write_image(victim, load_image("skimage:rocket")[:32, :32])
    linked = next(r for r in recs if r["id"] == "r4")
    (out / linked["image"]).unlink()
    (out / linked["image"]).symlink_to(victim)
    return out


class Viewer:
    def __init__(self, folder: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [*robustgen_cmd(), "view", str(folder), "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read()

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes, dict]:
        req = urllib.request.Request(self.url.rstrip("/") + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def viewer(dataset) -> Iterator[Viewer]:
    v = Viewer(dataset)
    yield v
    code, out, err = v.stop()
    assert code == 0 and "stopped" in out and "Traceback" not in err, err


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _loaded(driver, css: str) -> list:
    """The elements matching ``css`` once every one of them is an image that finished loading with pixels."""
    WebDriverWait(driver, 30).until(
        lambda d: all(
            d.execute_script("return arguments[0].complete", e) for e in d.find_elements(By.CSS_SELECTOR, css)
        )
    )
    elements = driver.find_elements(By.CSS_SELECTOR, css)
    widths = [driver.execute_script("return arguments[0].naturalWidth", e) for e in elements]
    assert all(w > 0 for w in widths), (css, widths)
    return elements


def test_the_grid_shows_every_record_and_filters_by_url(viewer, browser, dataset):
    recs = _records(dataset)
    browser.get(viewer.url)
    shown = [e.get_attribute("data-record-id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-record-id]")]
    assert sorted(shown) == sorted(r["id"] for r in recs)
    _loaded(browser, "[data-record-id]:not([data-record-id=r4]) img")  # r4's image is a link out: not served
    name = recs[0]["degradations"][0]["name"]
    browser.get(viewer.url + "?" + urllib.parse.urlencode({"degrader": name}))
    shown = {e.get_attribute("data-record-id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-record-id]")}
    assert shown == {r["id"] for r in recs if any(d["name"] == name for d in r["degradations"])}
    sev = recs[0]["degradations"][0]["severity"]
    browser.get(viewer.url + f"?min_severity={sev}&max_severity={sev}")
    shown = {e.get_attribute("data-record-id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-record-id]")}
    assert recs[0]["id"] in shown
    assert shown == {r["id"] for r in recs if any(abs(d["severity"] - sev) < 1e-6 for d in r["degradations"])}
    browser.get(viewer.url + "?gate=failed")
    shown = [e.get_attribute("data-record-id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-record-id]")]
    assert shown == ["r2"]
    browser.get(viewer.url + "?q=PICTURE+3")
    shown = [e.get_attribute("data-record-id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-record-id]")]
    assert shown == ["r3"]


def test_a_record_page_shows_every_image_each_step_the_chain_and_the_exact_record(viewer, browser, dataset):
    rec = next(r for r in _records(dataset) if r["id"] == "r0")
    browser.get(viewer.url + "record/r0")
    _loaded(browser, "img[data-role=degraded]")
    _loaded(browser, "img[data-role=clean]")
    steps = _loaded(browser, "img[data-role=step]")
    assert len(steps) == len(rec["degradations"]) >= 1
    chain = rec["chain"]
    want = {
        "type": ", ".join(f"{label}({sev:.2f})" for label, sev in chain["types"]),
        **{k: chain[k] for k in ("influence", "reasoning", "conclusion", "answer")},
    }
    for part, text in want.items():
        assert browser.find_element(By.CSS_SELECTOR, f"[data-part={part}]").text == text.strip(), part
    shown = json.loads(browser.find_element(By.CSS_SELECTOR, "pre[data-role=record]").text)
    assert shown == rec["degradations"]
    assert "passed" in browser.find_element(By.CSS_SELECTOR, "[data-role=gate]").text
    SCREENSHOT.parent.mkdir(exist_ok=True)
    if os.environ.get("ROBUSTGEN_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        browser.save_screenshot(str(SCREENSHOT))  # the README's picture
    # the last step's image is the written degraded image's pixels (PNG, before the record's own JPEG encoding)
    status, body, headers = viewer.get(f"/step?id=r0&k={len(rec['degradations']) - 1}")
    assert status == 200 and headers["content-type"] == "image/png" and body[:4] == b"\x89PNG"


def test_a_question_holding_markup_is_shown_as_text_and_never_runs(viewer, browser):
    for path in ("", "record/r1", "?q=onerror"):
        browser.get(viewer.url + path)
        assert browser.execute_script("return window.pwned") is None, path
        assert browser.title != "pwned"
    assert HOSTILE in browser.page_source.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') or (
        "onerror" in browser.find_element(By.CSS_SELECTOR, "[data-record-id=r1]").text
    )
    browser.get(viewer.url + "record/r1")
    assert browser.find_element(By.CSS_SELECTOR, "[data-role=question]").text == HOSTILE
    assert browser.find_elements(By.CSS_SELECTOR, "img[src=x]") == []


def test_no_url_reaches_a_file_outside_the_folder(viewer, dataset):
    secret = (dataset.parent / "victim.png").read_bytes()
    paths = [
        "/record/..%2F..%2Fetc%2Fpasswd",
        "/record/%2Fetc%2Fpasswd",
        "/static/..%2F..%2F..%2Fmanifest.json",
        "/static/%2E%2E/%2E%2E/app.py",
        "/image?id=r0&role=..%2F..%2Fmanifest.json",
        "/image?id=%2Fetc%2Fpasswd&role=degraded",
        "/image?id=r4&role=degraded",  # its file is a link to victim.png, outside
        "/image?id=r4&role=thumb",
        "/step?id=r0&k=-1",
        "/step?id=r0&k=99",
        "/explore/image?image=%2Fetc%2Fpasswd",
        "/explore/image?image=skimage%3A..%2F..%2Fetc%2Fpasswd",
        "/explore/image?image=skimage%3Aretina",  # a scikit-image photo that would be fetched: not offered
    ]
    for path in paths:
        status, body, _ = viewer.get(path)
        assert status in (400, 404), (path, status)
        assert secret not in body and b"root:" not in body, path


def test_the_viewer_is_read_only_and_fetches_nothing(viewer, dataset):
    before = _tree(dataset)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/record/r0", "/image?id=r0&role=degraded"):
            assert viewer.get(path, method)[0] == 405, (method, path)
    status, body, headers = viewer.get("/record/r0")
    assert status == 200 and "default-src 'none'" in headers["content-security-policy"]
    page = body.decode()
    for attr in ("src=", "href="):  # every link and image is the viewer's own
        for chunk in page.split(attr)[1:]:
            assert chunk[1] in "/?#", chunk[:40]
    assert _tree(dataset) == before


def test_another_host_header_is_refused(viewer):
    req = urllib.request.Request(viewer.url, headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 400


def test_failures_are_listed_with_stage_and_reason(viewer, browser, dataset):
    failures = [json.loads(x) for x in (dataset / "failures.jsonl").read_text().splitlines() if x]
    browser.get(viewer.url + "failures")
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-failure-id]")
    assert [r.get_attribute("data-failure-id") for r in rows] == [f["id"] for f in failures] == ["lost"]
    assert failures[0]["stage"] in rows[0].text and "nowhere.png" in rows[0].text


def test_the_explorer_re_renders_when_the_slider_moves(viewer, browser):
    browser.get(viewer.url + "explore?degrader=fog&severity=0.2&image=skimage:coffee")
    first = _loaded(browser, "img[data-role=degraded]")[0].get_attribute("src")
    record = json.loads(browser.find_element(By.CSS_SELECTOR, "pre[data-role=record]").text)
    assert record["name"] == "fog" and record["severity"] == 0.2
    slider = browser.find_element(By.CSS_SELECTOR, "input[type=range][data-role=severity]")
    browser.execute_script(
        "arguments[0].value = '0.85'; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", slider
    )
    WebDriverWait(browser, 30).until(
        lambda d: json.loads(d.find_element(By.CSS_SELECTOR, "pre[data-role=record]").text)["severity"] == 0.85
    )
    img = _loaded(browser, "img[data-role=degraded]")[0]
    assert img.get_attribute("src") != first and "severity=0.85" in img.get_attribute("src")
    assert "severity=0.85" in browser.current_url  # the URL says what is shown
    # the record shown is what the degrader applies: the same call in Python gives the same record
    from robustgen.view.app import EXPLORE_SIDE  # noqa: F401  (the explorer's size, documented)

    status, body, _ = urllib_get_json(viewer, "/explore/record?degrader=fog&severity=0.85&image=skimage:coffee")
    assert status == 200 and body == json.loads(browser.find_element(By.CSS_SELECTOR, "pre[data-role=record]").text)


def urllib_get_json(viewer: Viewer, path: str) -> tuple[int, dict, dict]:
    status, body, headers = viewer.get(path)
    return status, json.loads(body), headers


def test_an_eval_run_shows_accuracy_per_level_and_the_items_that_flip(bench, browser, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    with FakeOpenAI(replier=vlm) as server:
        res = subprocess.run(
            [*robustgen_cmd(), *map(str, eval_args(bench, server.url, out))], capture_output=True, text=True
        )
    assert res.returncode == 0, res.stderr
    preds = {
        p.stem: {x["id"]: x for x in map(json.loads, p.read_text().splitlines())}
        for p in (out / "predictions").glob("*.jsonl")
    }
    report = json.loads((out / "report.json").read_text())  # what eval wrote
    assert "--input" in Viewer_page(out, "/flips?level=100")  # a path the folder names is not read on its say
    v = Viewer(out, "--input", str(bench))
    try:
        browser.get(v.url)
        for level in ("clean", "25", "50", "100"):
            cell = browser.find_element(By.CSS_SELECTOR, f"[data-level='{level}']")
            assert cell.text == f"{100 * report['levels'][level]['accuracy']:.1f}", level
        browser.get(v.url + "flips?level=100")
        flips = [e.get_attribute("data-flip-id") for e in browser.find_elements(By.CSS_SELECTOR, "[data-flip-id]")]
        want = sorted(i for i, p in preds["100"].items() if preds["clean"][i]["correct"] and not p["correct"])
        assert flips == want and want
        _loaded(browser, f"[data-flip-id='{want[0]}'] img")
        assert len(browser.find_elements(By.CSS_SELECTOR, f"[data-flip-id='{want[0]}'] img")) == 4
    finally:
        code, _, err = v.stop()
    assert code == 0, err


def Viewer_page(folder: Path, path: str) -> str:  # noqa: N802
    v = Viewer(folder)
    try:
        status, body, _ = v.get(path)
        assert status == 200, path
        return body.decode()
    finally:
        assert v.stop()[0] == 0


def test_an_eval_run_shows_images_only_from_the_input_the_user_names(bench, tmp_path):  # noqa: F811
    """The folder's own note of its input is data: pointed elsewhere, nothing there is read; an --input that is not
    the run's is refused in one line."""
    out = tmp_path / "run"
    with FakeOpenAI(replier=vlm) as server:
        assert subprocess.run([*robustgen_cmd(), *map(str, eval_args(bench, server.url, out))]).returncode == 0
    secret = tmp_path / "secret"
    write_image(secret / "0.png", load_image("skimage:rocket")[:64, :64])
    (out / ".work" / "input.json").write_text(json.dumps({"input": str(secret), "format": "folder"}))
    v = Viewer(out)
    try:
        assert v.get("/eval-image?level=clean&id=0")[0] == 404
    finally:
        v.stop()
    other = tmp_path / "other.tsv"
    other.write_text(bench.read_text().replace("What colour", "Which colour"))
    res = cli("view", out, "--input", other, "--port", "0")
    assert res.returncode == 2 and "not the input this run was asked on" in res.stderr


def test_tampered_records_and_files_are_shown_never_a_server_error(tmp_path):
    """Lines that are not records, numbers no float holds, lone surrogates, wrong types: each page answers, and the
    record page shows such a line as its JSON with the reason."""
    ds = tmp_path / "ds"
    assert cli("synth", "--out", ds, "--workers", 1).returncode == 0
    shard = next((ds / "data").glob("*.jsonl"))
    recs = [json.loads(x) for x in shard.read_text().splitlines()]
    recs[0]["choices"] = 5
    recs[1]["chain"]["types"] = [["a", 10**400]]
    recs[2]["degradations"][0]["shown_severity"] = 10**400
    recs[3]["chain_quality"]["checks"] = [1, 2]
    recs[4]["question"] = 'Is the STRAßE wet? He said "stop" at c:\\temp'
    lines = [json.dumps(r) for r in recs] + ['{"id": "torn", "image": ']
    shard.write_text("\n".join(lines))
    (ds / "failures.jsonl").write_text('{"id": "f1", "stage": "decode", "reason": "\\ud800 bad"}\nnot json\n')
    v = Viewer(ds)
    try:
        for r in recs[:4]:
            status, body, _ = v.get("/record?" + urllib.parse.urlencode({"id": r["id"]}))
            assert status == 200 and b'data-role="record"' in body, r["id"]
        for path in ("/", "/failures", "/?page=2", "/?min_severity=0.99"):
            assert v.get(path)[0] == 200, path
        for q, want in (("straße", recs[4]["id"]), ('said "stop"', recs[4]["id"]), ("c:\\temp", recs[4]["id"])):
            _, body, _ = v.get("/?" + urllib.parse.urlencode({"q": q}))
            assert f'data-record-id="{want}"' in body.decode(), q
        assert v.get("/explore/image?image=astronaut")[0] == 400  # only skimage: samples, never a file here
    finally:
        code, _, err = v.stop()
    assert code == 0 and "Traceback" not in err, err


def test_usage_errors_are_one_line(dataset, tmp_path):
    res = cli("view", tmp_path)
    assert res.returncode == 2 and "neither a dataset" in res.stderr and "Traceback" not in res.stderr
    with subprocess.Popen(
        [*robustgen_cmd(), "view", str(dataset), "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as a:
        port = a.stdout.readline().strip().rsplit(":", 1)[1].rstrip("/")
        res = cli("view", dataset, "--port", port)  # taken
        a.send_signal(signal.SIGINT)
        a.wait(timeout=30)
    assert res.returncode == 2 and port in res.stderr and "Traceback" not in res.stderr
    assert a.returncode == 0


def test_another_host_than_loopback_is_warned_about(dataset):
    p = subprocess.Popen(
        [*robustgen_cmd(), "view", str(dataset), "--port", "0", "--host", "0.0.0.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.readline().startswith("http://")
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert "warning" in err and "0.0.0.0" in err
