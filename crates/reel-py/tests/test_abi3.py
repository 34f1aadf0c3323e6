"""The abi3 module built once imports and records under Python 3.10 as under 3.12 (this
interpreter): a short recording in a Python 3.10 venv, read back by reel's own check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import info, require

SCRIPT = r'''
import sys, numpy as np, reel
root = sys.argv[1]
names = ["a", "b"]
f = {"action": {"dtype": "float32", "shape": (2,), "names": names},
     "observation.images.cam": {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"]}}
w = reel.Writer.create(root, 30, f, vcodec="libx264", durable=False)
for k in range(6):
    w.add_frame({"action": np.full(2, k, np.float32),
                 "observation.images.cam": np.full((64, 64, 3), 10 * k, np.uint8), "task": "t"})
w.save_episode()
saved = w.wait_saved(timeout=60)
w.finalize()
print(sys.version_info[:2], [s["frames"] for s in saved])
'''


def test_the_module_records_under_python_3_10(tmp_path):
    py310 = os.environ.get("REEL_PY310")
    if not py310 or not Path(py310).exists():
        require("a Python 3.10 interpreter with numpy (REEL_PY310, set by scripts/test.sh)")
    out = subprocess.run([py310, "-c", SCRIPT, str(tmp_path / "ds")], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": os.environ.get("REEL_PY_STAGE", "")})
    assert out.returncode == 0, out.stderr
    assert "(3, 10) [6]" in out.stdout, out.stdout
    assert info(tmp_path / "ds")["total_frames"] == 6
