"""The robustness report of an eval run: per level accuracy with a 95% bootstrap interval, retention against
the clean images and an exact McNemar test on the paired items; breakdowns per degradation type and stage;
the paper's table; ``report.json``, ``report.md`` and a self-contained ``report.html`` with plots."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from robustgen.errors import RobustgenError
from robustgen.eval.stats import bootstrap_ci, mcnemar_exact, paired_diff_ci

CLEAN = "clean"
FEW = 30  # cells with fewer items are flagged: their interval is wide


def load_predictions(run: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{level: {id: prediction}} of an eval run folder."""
    folder = Path(run) / "predictions"
    if not folder.is_dir():
        raise RobustgenError(f"{run}: not an eval run (no predictions/); run `robustgen eval` first")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        if path.name.startswith("."):
            continue
        rows: dict[str, dict[str, Any]] = {}
        data = path.read_bytes()
        lines = data.splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                if n == len(lines) and not data.endswith(b"\n"):
                    continue  # the last line of a killed run, torn: eval asks it again on resume
                obj = None
            if not (isinstance(obj, dict) and isinstance(obj.get("id"), str) and isinstance(obj.get("correct"), bool)):
                raise RobustgenError(f"{path}:{n}: not a prediction (a JSON object with 'id' and 'correct')")
            rows[obj["id"]] = obj
        out[path.stem] = rows
    return out


#: what two eval runs must share to be compared item by item (the model and endpoint are what differs)
PAIRED_KEYS = ("input", "format", "levels", "recipe", "seed", "limit")


def pairing(run: str | Path) -> dict[str, Any] | None:
    """What an eval run was asked on (its inputs, levels, recipe and seed; for an eval-report folder its
    manifest), or None when the folder does not say."""
    run = Path(run)
    for name in ("run.json", "kind.json"):
        try:
            data = json.loads((run / ".work" / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        if name == "run.json":
            return {k: data.get(k) for k in PAIRED_KEYS}
        if data.get("kind") == "eval-report" and isinstance(data.get("identity"), dict):
            return dict(data["identity"])
    return None


def _whole(x: str) -> bool:
    """A level named by a whole number in ASCII digits ("²" is a digit to Python, not to ``int``)."""
    return x.isascii() and x.isdigit()


def _order(levels: list[str]) -> list[str]:
    rest = sorted((x for x in levels if x != CLEAN), key=lambda x: (not _whole(x), int(x) if _whole(x) else 0, x))
    return ([CLEAN] if CLEAN in levels else []) + rest


def _cell(correct: list[bool], seed: int) -> dict[str, Any]:
    lo, hi = bootstrap_ci(correct, seed)
    n = len(correct)
    return {
        "n": n,
        "accuracy": (sum(correct) / n) if n else math.nan,
        "ci95": [lo, hi],
        "few": n < FEW,
    }


def build_report(run: str | Path, seed: int = 0) -> dict[str, Any]:
    preds = load_predictions(run)
    levels = _order(list(preds))
    clean = preds.get(CLEAN, {})
    clean_acc = (sum(p["correct"] for p in clean.values()) / len(clean)) if clean else math.nan
    report: dict[str, Any] = {"levels": {}, "by_type": {}, "by_stage": {}, "seed": seed}
    for name in levels:
        # in id order: the bootstrap resamples positions, so the figures must not depend on the order in which a
        # (possibly resumed) run appended its predictions
        rows = {i: preds[name][i] for i in sorted(preds[name])}
        cell = _cell([bool(p["correct"]) for p in rows.values()], seed)
        paired = [i for i in rows if i in clean]
        cell["retention"] = cell["accuracy"] / clean_acc if clean_acc and not math.isnan(clean_acc) else math.nan
        cell["mcnemar_p"] = mcnemar_exact(
            [bool(clean[i]["correct"]) for i in paired], [bool(rows[i]["correct"]) for i in paired]
        )
        cell["paired"] = len(paired)
        report["levels"][name] = cell
        if name == CLEAN:
            continue
        by_type: dict[str, list[bool]] = defaultdict(list)
        by_stage: dict[str, list[bool]] = defaultdict(list)
        for p in rows.values():
            steps = p.get("degradations") if isinstance(p.get("degradations"), list) else []
            steps = [d for d in steps if isinstance(d, dict)]  # a damaged entry counts for no type or stage
            for label in (d.get("label") for d in steps):
                if isinstance(label, str):
                    by_type[label].append(bool(p["correct"]))
            for stage in {d.get("stage") for d in steps if isinstance(d.get("stage"), str)}:
                by_stage[stage].append(bool(p["correct"]))
        for label, xs in by_type.items():
            report["by_type"].setdefault(label, {})[name] = _cell(xs, seed)
        for stage, xs in by_stage.items():
            report["by_stage"].setdefault(stage, {})[name] = _cell(xs, seed)
    return report


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown(report: dict[str, Any], title: str) -> str:
    levels = list(report["levels"])
    lines = [
        f"# Robustness report: {title}",
        "",
        "| level | n | accuracy % | 95% CI | retention | McNemar p vs clean |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for name in levels:
        c = report["levels"][name]
        retention = "n/a" if math.isnan(c["retention"]) else f"{c['retention']:.3f}"
        lines.append(
            f"| {name} | {c['n']} | {_pct(c['accuracy'])} | {_pct(c['ci95'][0])}-{_pct(c['ci95'][1])} | "
            f"{retention} | {c['mcnemar_p']:.4g} |"
        )
    lines += ["", "The paper's layout (accuracy %):", "", "| " + " | ".join(levels) + " |", "|" + "---|" * len(levels)]
    lines.append("| " + " | ".join(_pct(report["levels"][n]["accuracy"]) for n in levels) + " |")
    for key, what in (("by_type", "degradation type"), ("by_stage", "stage")):
        degraded = [n for n in levels if n != CLEAN]
        lines += ["", f"Per {what} (accuracy %, n; * = fewer than {FEW} items):", ""]
        lines += ["| " + what + " | " + " | ".join(degraded) + " |", "|---|" + "---|" * len(degraded)]
        for label in sorted(report[key]):
            cells = report[key][label]
            row = [
                f"{_pct(cells[n]['accuracy'])} ({cells[n]['n']}{'*' if cells[n]['few'] else ''})" if n in cells else "-"
                for n in degraded
            ]
            lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _plot(report: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False}):
        names = list(report["levels"])
        acc = [report["levels"][n]["accuracy"] for n in names]
        lo = [a - report["levels"][n]["ci95"][0] for a, n in zip(acc, names, strict=True)]
        hi = [report["levels"][n]["ci95"][1] - a for a, n in zip(acc, names, strict=True)]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.errorbar(names, acc, yerr=[lo, hi], marker="o", capsize=4)
        ax.set_ylim(0, 1)
        ax.set_xlabel("level")
        ax.set_ylabel("accuracy (95% CI)")
        ax.set_title("accuracy by degradation level")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()


def write_report(run: str | Path, seed: int = 0) -> dict[str, Any]:
    """report.json, report.md, report.html and accuracy.png in the run folder; returns the report."""
    run = Path(run)
    report = build_report(run, seed)
    (run / "report.json").write_text(json.dumps(finite(report), indent=2, sort_keys=True), encoding="utf-8")
    md = markdown(report, run.name)
    (run / "report.md").write_text(md, encoding="utf-8")
    png = _plot(report)
    (run / "accuracy.png").write_bytes(png)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>robustness report</title></head><body>"
        f"<img alt='accuracy by level' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<pre>{html.escape(md)}</pre></body></html>"
    )
    (run / "report.html").write_text(page, encoding="utf-8")
    return report


def finite(obj: Any) -> Any:
    """``obj`` with NaN turned into null, so the JSON is standard (an empty level has no accuracy)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def compare(run_a: str | Path, run_b: str | Path, seed: int = 0, force: bool = False) -> dict[str, Any]:
    """Two models on the same items: per level the paired accuracy difference (B - A), its bootstrap interval and
    the exact McNemar p-value. Runs asked on other inputs, levels, recipe or seed are not paired: refused unless
    ``force``, and then the result says so (``paired``: false, ``differences``)."""
    a, b = load_predictions(run_a), load_predictions(run_b)
    pa, pb = pairing(run_a), pairing(run_b)
    if pa is None or pb is None:
        differences = ["the run does not record its inputs (no .work/run.json)"]
    else:
        differences = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
    if differences and not force:
        raise RobustgenError(
            f"{run_a} and {run_b} are not paired (they differ in {', '.join(differences)}); --force compares them "
            "anyway"
        )
    levels: dict[str, Any] = {}
    for name in _order([n for n in a if n in b]):
        ids = sorted(set(a[name]) & set(b[name]))
        xa = [bool(a[name][i]["correct"]) for i in ids]
        xb = [bool(b[name][i]["correct"]) for i in ids]
        n = len(ids)
        levels[name] = {
            "n": n,
            "accuracy_a": sum(xa) / n if n else math.nan,
            "accuracy_b": sum(xb) / n if n else math.nan,
            "difference": (sum(xb) - sum(xa)) / n if n else math.nan,
            "ci95": list(paired_diff_ci(xa, xb, seed)),
            "mcnemar_p": mcnemar_exact(xa, xb),
        }
    return {"paired": not differences, "differences": differences, "levels": levels}
