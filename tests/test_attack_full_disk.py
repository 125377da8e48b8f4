"""A full disk under the store: one clear line and exit 2, health says the store cannot be
written, and everything works again once space is freed (finding 11 of the attack run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_a_full_disk_is_named_and_survived(tmp_path: Path) -> None:
    assert shutil.which("unshare"), "util-linux's unshare is needed (Debian: util-linux)"
    done = subprocess.run(["unshare", "--mount", "--map-root-user", sys.executable, "-m",
                           "tests.full_disk_probe", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    assert steps["first"][0] == 0
    code, stderr = steps["full"]
    assert code == 2, stderr
    assert "no space left on device" in stderr and str(tmp_path / "disk") in stderr
    assert "Traceback" not in stderr and stderr.count("rag: error:") == 1
    health = steps["health"]
    assert health["status"] == "degraded" and health["store"]["writable"] is False
    assert "no space left on device" in health["store"]["problem"]
    status, body = steps["query"]
    assert status in (200, 507), body
    if status == 507:
        assert body["error"]["code"] == "store_full"
    code, stdout, stderr = steps["freed"]
    assert "40 added" in stdout
    assert code == 0, stderr
    assert steps["listed"] == 41  # the sample article and all 40 others: nothing lost
