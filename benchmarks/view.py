"""`robustgen view` at scale: a 100,000-record dataset (the Quick start's records, repeated under new ids). Run on
demand (not in CI):

    python benchmarks/view.py [--records 100000]

Measures the time from the command's start to the URL printed and to `/` answering, the time Chromium takes to
load a grid page and a filtered page (navigation start to the load event, thumbnails of the first screen
included), and the server's peak RSS. Targets (issue 25): ready within 5 s, each page within 2 s, RSS under
500 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_dataset(folder: Path, n: int) -> Path:
    small = folder / "small"
    subprocess.run(
        [sys.executable, "-m", "robustgen.cli", "synth", "--out", str(small)], check=True, capture_output=True
    )
    big = folder / "big"
    (big / "data").mkdir(parents=True)
    shutil.copy(small / "manifest.json", big / "manifest.json")
    shutil.copytree(small / "images", big / "images")
    base = [json.loads(x) for s in sorted((small / "data").glob("*.jsonl")) for x in s.read_text().splitlines()]
    per_shard = 10_000
    for start in range(0, n, per_shard):
        with (big / "data" / f"part-{start // per_shard:016x}.jsonl").open("w") as f:
            for i in range(start, min(n, start + per_shard)):
                rec = dict(base[i % len(base)])
                rec["id"] = f"{i:07d}-{rec['id']}"
                f.write(json.dumps(rec) + "\n")
    return big


def page_seconds(driver, url: str) -> float:
    driver.get(url)
    timing = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
    return (timing["loadEventEnd"] - timing["startTime"]) / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as tmp:
        ds = make_dataset(Path(tmp), args.records)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "robustgen.cli", "view", str(ds), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        url = proc.stdout.readline().strip()
        t_url = time.perf_counter() - t0
        with urllib.request.urlopen(url, timeout=60) as r:
            assert r.status == 200
        t_ready = time.perf_counter() - t0
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            opts.add_argument(a)
        driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
        try:
            first = json.loads((ds / "data" / "part-0000000000000000.jsonl").open().readline())
            name = first["degradations"][0]["name"]
            grid = [page_seconds(driver, url + f"?page={p}") for p in (1, 500, 1000)]
            filtered = [
                page_seconds(driver, url + f"?degrader={name}&min_severity=0.5"),
                page_seconds(driver, url + "?q=orange&page=3"),
                page_seconds(driver, url + "?q=no-such-words-anywhere"),
            ]
        finally:
            driver.quit()
        rss = 0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) // 1024
        proc.terminate()
        proc.wait(timeout=30)
    print("| measure | result |\n|---|---|")
    print(f"| {args.records} records: URL printed / `/` answering | {t_url:.2f} s / {t_ready:.2f} s (target 5 s) |")
    print(f"| grid pages 1, 500, 1000 in Chromium | {', '.join(f'{x:.2f}' for x in grid)} s (target 2 s) |")
    print(
        f"| filtered pages (degrader and severity; text, page 3; text matching nothing) | "
        f"{', '.join(f'{x:.2f}' for x in filtered)} s (target 2 s) |"
    )
    print(f"| server peak RSS | {rss} MB (target 500 MB) |")


if __name__ == "__main__":
    main()
