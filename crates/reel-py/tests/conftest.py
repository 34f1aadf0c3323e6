"""Shared helpers for the Python tests of reel (run by scripts/test.sh with the LeRobot 0.6.1
venv's python, the built package on PYTHONPATH).

Like the Rust tests, a missing oracle (LeRobot's loader, lerobot_check.py, deepdiff, the
Python 3.10 interpreter) skips with a note, unless REEL_REQUIRE_ORACLE=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = REPO.parent / "shared"
HELPERS = HERE / "helpers"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("REEL_LOG", "warn")


def require(what: str):
    """Skips (or, under REEL_REQUIRE_ORACLE=1, fails) for a missing piece."""
    if os.environ.get("REEL_REQUIRE_ORACLE"):
        pytest.fail(f"REEL_REQUIRE_ORACLE is set but {what} is missing")
    pytest.skip(f"{what} is missing")


def conformance_script() -> Path:
    conf = Path(os.environ.get("REEL_CONFORMANCE_DIR", SHARED / "conformance"))
    script = conf / "lerobot_check.py"
    if not script.is_file():
        require(f"lerobot_check.py ({script})")
    return script


def assert_lerobot_check(root: Path, *extra: str) -> str:
    """LeRobot 0.6.1's loader, through lerobot_check.py --strict, passes on ``root``."""
    out = subprocess.run([sys.executable, str(conformance_script()), str(root), "--strict",
                          "--color", "never", *extra], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "RESULT: PASS" in out.stdout, \
        f"lerobot_check.py --strict failed on {root}:\n{out.stdout[-6000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def info(root: Path) -> dict:
    return json.loads((Path(root) / "meta" / "info.json").read_text())


def lerobot_env(tmp: Path, **extra: str) -> dict:
    """The environment of a LeRobot command: offline, its home in ``tmp``, the package and the
    test helpers importable."""
    env = dict(os.environ)
    env["HF_LEROBOT_HOME"] = str(tmp / "hf")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def lerobot_cmd(name: str) -> str:
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        require(f"LeRobot's {name} (in {exe.parent})")
    return str(exe)


def fake_robot_args(cameras: int = 1, width: int = 128, height: int = 96, **more) -> list[str]:
    a = ["--robot.discover_packages_path=reel.testing", "--robot.type=reel_fake_robot",
         "--robot.id=fake", f"--robot.num_cameras={cameras}", f"--robot.width={width}",
         f"--robot.height={height}"]
    a += [f"--robot.{k}={v}" for k, v in more.items()]
    return a


def run(cmd: list[str], env: dict, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def features(cameras=(("front", 96, 128),), joints=6) -> dict:
    names = [f"j{i}.pos" for i in range(joints)]
    f = {
        "action": {"dtype": "float32", "shape": (joints,), "names": names},
        "observation.state": {"dtype": "float32", "shape": (joints,), "names": names},
    }
    for cam, h, w in cameras:
        f[f"observation.images.{cam}"] = {"dtype": "video", "shape": (h, w, 3),
                                          "names": ["height", "width", "channels"]}
    return f


def frame_image(k: int, h: int, w: int, cam: int = 0) -> np.ndarray:
    """A textured frame that differs per index (decodable, not flat)."""
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (xs * 2 + 7 * k) % 256
    img[..., 1] = (ys * 2 + 3 * k + 50 * cam) % 256
    img[..., 2] = (20 + 10 * k) % 256
    return img
