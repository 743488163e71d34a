"""Small helpers shared by the tests: the installed CLI, a free port, the fake teacher's CLI flags."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def robustgen_cmd() -> list[str]:
    """The installed ``robustgen`` script (as users run it), or the module when it is not on PATH."""
    exe = shutil.which("robustgen")
    return [exe] if exe else [sys.executable, "-m", "robustgen.cli"]


def cli(*args, **kw) -> subprocess.CompletedProcess:
    """Run the installed ``robustgen`` with ``args`` (stringified), capturing text output."""
    cmd = [*robustgen_cmd(), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_teacher_args(url: str, key_env: str = "ROBUSTGEN_TEST_KEY", structured: str = "auto") -> list[str]:
    """synth flags for the openai teacher against a FakeOpenAI server (the default ``auto`` mode: the probe runs)."""
    return [
        "--teacher",
        "openai",
        "--base-url",
        url,
        "--model",
        "fake",
        "--api-key-env",
        key_env,
        "--structured-output",
        structured,
    ]


def install_example(example: Path, target: Path) -> dict[str, str]:
    """pip-install an example plugin into ``target``; the environment that makes Python see it."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "--target", str(target), str(example)], check=True, capture_output=True, text=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
