"""A third-party package adds a degrader through the ``robustgen.degraders`` entry point."""

import json
import subprocess
import sys
from pathlib import Path

from .helpers import install_example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_degrader"


def test_installed_plugin_is_listed_used_and_replayed(tmp_path):
    env = install_example(EXAMPLE, tmp_path / "site")
    listed = subprocess.run(
        [sys.executable, "-m", "robustgen.cli", "list", "--json"], env=env, capture_output=True, text=True, check=True
    )
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["sepia"]["label"] == "sepia toning" and rows["sepia"]["stage"] == "postprocessing"
    assert "motion_blur" in rows  # the built-ins are still there
    script = (
        "import numpy as np, robustgen as rg\n"
        "from robustgen.images import load_image\n"
        "img = load_image('skimage:coffee')\n"
        "out, rec = rg.degrade_image(img, 'sepia', 0.9, seed=1)\n"
        "assert np.array_equal(rg.replay(img, [rec]), out) and not np.array_equal(out, img)\n"
        "plan = rg.Recipe(degraders=['sepia', 'fog']).sample(seed=0, sample_id='a')\n"
        "print(rec.params['amount'], len(plan))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "0.91"
