"""reel cameras inside LeRobot (reel.lerobot_camera): LeRobot's Camera surface on reel's
native capture, frames recorded without a copy, repeats counted, losses handled as
``reel record --on-camera-loss`` does — checked in process and in the stock ``lerobot-record``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

import reel
from conftest import assert_lerobot_check, info, lerobot_cmd, lerobot_env, run
from reel.testing import read_code, write_code_video
from reel.testing.camera_robot import BLUE

W, H = 128, 96


def codes_file(tmp: Path, frames: int = 150) -> Path:
    p = tmp / f"codes{frames}.mkv"
    write_code_video(str(p), frames, W, H)
    return p


def decoded_codes(mp4: Path) -> list[int]:
    import av

    with av.open(str(mp4)) as c:
        return [read_code(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def camera(cfg_kwargs: dict):
    from reel.lerobot_camera import ReelCamera, ReelCameraConfig

    return ReelCamera(ReelCameraConfig(width=W, height=H, fps=30, **cfg_kwargs))


def test_reel_camera_has_lerobots_surface_and_never_makes_the_loop_wait(tmp_path):
    from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

    cam = camera({"input": str(codes_file(tmp_path)), "max_wait_ms": 0.0})
    with pytest.raises(DeviceNotConnectedError):
        cam.read_latest()
    cam.connect()
    assert cam.is_connected
    with pytest.raises(DeviceAlreadyConnectedError):
        cam.connect()
    a = cam.read_latest()
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert not a.flags.writeable, "the policy gets a read-only view of reel's buffer"
    with pytest.raises(ValueError):
        a.flags.writeable = True
    # Back-to-back reads within one frame interval: the second is a counted repeat, at once.
    b = cam.read_latest()
    t0 = time.perf_counter()
    c = cam.async_read()
    waited = time.perf_counter() - t0
    assert cam.last_read["repeated"] and read_code(c) == read_code(b)
    assert waited < 0.030, "a zero budget never waits for the next frame"
    # read() blocks for a newer frame: codes advance.
    k0 = read_code(cam.read())
    k1 = read_code(cam.read())
    assert k1 == k0 + 1, (k0, k1)
    counts = cam.counts()
    assert counts["repeats"] >= 1 and counts["reads"] >= 4 and counts["captured"] >= 2
    # BGR colour mode: the same frame with its channels reversed (a view).
    cam.disconnect()
    assert not cam.is_connected
    with pytest.raises(DeviceNotConnectedError):
        cam.disconnect()
    bgr = camera({"input": str(codes_file(tmp_path)), "color_mode": "bgr"})
    bgr.connect()
    x = bgr.read()
    # write_code_video's blue is BLUE everywhere below the code band: first in BGR.
    assert x.shape == (H, W, 3) and (x[20:, :, 0] == BLUE).all()
    assert not (x[20:, :, 2] == BLUE).all()
    bgr.disconnect()


def test_bad_camera_configs_and_absent_inputs_are_clear_errors(tmp_path):
    from reel.lerobot_camera import ReelCameraConfig

    missing = tmp_path / "absent.mkv"
    cam = camera({"input": str(missing), "open_timeout_s": 2.0})
    with pytest.raises(ConnectionError, match="absent.mkv"):
        cam.connect()
    assert not cam.is_connected
    with pytest.raises(ValueError, match="on_loss"):
        ReelCameraConfig(input="lavfi:testsrc2", width=W, height=H, fps=30, on_loss="ignore")
    with pytest.raises(ValueError, match="max_wait_ms"):
        ReelCameraConfig(input="lavfi:testsrc2", width=W, height=H, fps=30, max_wait_ms=-1)
    with pytest.raises(ValueError, match="unknown fault"):
        camera({"input": str(codes_file(tmp_path)), "fault": "melt"}).connect()


def test_async_read_waits_within_the_ticks_budget_for_a_frame_about_to_arrive(tmp_path):
    cam = camera({"input": str(codes_file(tmp_path)), "max_wait_ms": 50.0})
    cam.connect()
    first = read_code(cam.async_read())
    second = read_code(cam.async_read())  # none new yet: waits (<= 50 ms budget) for the next
    assert second == first + 1 and not cam.last_read["repeated"]
    assert cam.counts()["waits"] >= 1
    cam.disconnect()


def test_camera_frames_are_recorded_without_a_copy_and_decode_back(tmp_path):
    cam = camera({"input": str(codes_file(tmp_path))})
    cam.connect()
    feats = {"observation.images.front": {"dtype": "video", "shape": (H, W, 3),
                                          "names": ["height", "width", "channels"]},
             "observation.state": {"dtype": "float32", "shape": (2,), "names": ["a", "b"]}}
    w = reel.Writer.create(str(tmp_path / "ds"), 30, feats, vcodec="libx264")
    given = []
    for _ in range(40):
        img = cam.async_read()
        given.append(read_code(img))
        w.add_frame({"observation.images.front": img, "observation.state": np.zeros(2, np.float32),
                     "task": "t"})
        time.sleep(1 / 30)
    # A user's array (a copy, or a slice-derived one) takes the pooled copy.
    w.add_frame({"observation.images.front": np.array(img), "observation.state": np.zeros(2, np.float32),
                 "task": "t"})
    given.append(read_code(img))
    copies = w.frame_copies()
    assert copies["zero_copy"] == 40 and copies["copied"] == 1, copies
    w.save_episode()
    w.finalize()
    cam.disconnect()
    mp4s = sorted((tmp_path / "ds" / "videos").rglob("*.mp4"))
    assert decoded_codes(mp4s[0]) == given
    figs = reel.episode_figures(tmp_path / "ds")[0]
    # The writer saw the camera's real capture times: ages and repeats are its figures.
    assert "camera/front/age_p50_ms" in figs and "camera/front/repeated_frames" in figs
    # (the last, copied image has no capture time of its own: it is timed by its call, not a repeat)
    cam_given = given[:40]
    assert figs["camera/front/repeated_frames"] == sum(1 for a, b in zip(cam_given, cam_given[1:]) if a == b)


def record(tmp: Path, root: Path, cameras: str, seconds: float, plugin: str = "reel.lerobot_plugin",
           log: Path | None = None, extra_env: dict | None = None):
    cmd = [lerobot_cmd("lerobot-record"), "--robot.discover_packages_path=reel.testing",
           "--robot.type=reel_camera_robot", "--robot.id=cam", f"--robot.cameras={cameras}",
           "--teleop.type=reel_fake_teleop", "--teleop.id=t", "--dataset.repo_id=t/cam",
           f"--dataset.root={root}", "--dataset.single_task=look", "--dataset.num_episodes=1",
           f"--dataset.episode_time_s={seconds}", "--dataset.reset_time_s=0",
           "--dataset.push_to_hub=false", "--play_sounds=false",
           f"--dataset.discover_packages_path={plugin}"]
    if log is not None:
        cmd.append(f"--robot.log_path={log}")
    return run(cmd, {**lerobot_env(tmp), **(extra_env or {})})


def stored_codes(root: Path) -> list[int]:
    """Each stored frame's code, through LeRobot's own loader (decoded at its timestamps)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("t/cam", root=root)
    out = []
    for i in range(len(ds)):
        img = ds[i]["observation.images.front"]  # CHW float in [0, 1]
        out.append(read_code((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)))
    return out


def test_the_frame_the_loop_got_is_the_frame_stored(tmp_path):
    """In the stock lerobot-record: the frame code of every observation (read by the robot from
    the array it returned) equals the code LeRobot's loader decodes for that row."""
    src = codes_file(tmp_path, 150)
    root, log = tmp_path / "ds", tmp_path / "obs.jsonl"
    r = record(tmp_path, root, f"{{front: {{type: reel, input: {src}, width: {W}, height: {H}, fps: 30}}}}",
               3, log=log)
    assert r.returncode == 0, r.stderr[-4000:]
    seen = [json.loads(line)["codes"]["front"] for line in log.read_text().splitlines()]
    assert info(root)["total_frames"] == len(seen) >= 60
    assert f"reel: {len(seen)} camera images recorded without a copy (reel cameras), 0 copied" in r.stderr
    assert stored_codes(root) == seen
    assert_lerobot_check(root)


def test_opencv_cameras_become_reel_cameras_without_changing_the_robot(tmp_path):
    """``reel.lerobot_plugin_native``: the robot's opencv-type cameras (here LeRobot's
    OpenCVCamera reading a file, ``reel_paced_file``) are built as reel cameras."""
    src = codes_file(tmp_path, 150)
    root, log = tmp_path / "ds", tmp_path / "obs.jsonl"
    cams = f"{{front: {{type: reel_paced_file, index_or_path: {src}, width: {W}, height: {H}, fps: 30}}}}"
    r = record(tmp_path, root, cams, 2, plugin="reel.lerobot_plugin_native", log=log)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "opencv cameras become reel cameras" in r.stderr
    assert "camera 'front' (reel_paced_file" in r.stderr and "replaced by a reel camera" in r.stderr
    seen = [json.loads(line)["codes"]["front"] for line in log.read_text().splitlines()]
    assert "recorded without a copy (reel cameras), 0 copied" in r.stderr
    assert stored_codes(root) == seen
    assert_lerobot_check(root)


def test_lerobots_own_cameras_stay_lerobots_without_the_option(tmp_path):
    src = codes_file(tmp_path, 150)
    root = tmp_path / "ds"
    cams = f"{{front: {{type: reel_paced_file, index_or_path: {src}, width: {W}, height: {H}, fps: 30}}}}"
    r = record(tmp_path, root, cams, 1.5)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "replaced by a reel camera" not in r.stderr
    m = re.search(r"reel: (\d+) camera images recorded without a copy \(reel cameras\), (\d+) copied", r.stderr)
    assert m, r.stderr[-3000:]
    assert int(m.group(1)) == 0 and int(m.group(2)) == info(root)["total_frames"] > 0


def test_a_camera_that_stops_ends_the_episode_saved_up_to_its_loss(tmp_path):
    src = codes_file(tmp_path, 45)  # 1.5 s of frames, then the file ends (no loop)
    root = tmp_path / "ds"
    cams = (f"{{front: {{type: reel, input: {src}, width: {W}, height: {H}, fps: 30, "
            f"fault: end-file}}}}")
    r = record(tmp_path, root, cams, 4)
    assert r.returncode != 0, "LeRobot's loop gets a clear exception, never a silent freeze"
    assert "CameraLostError" in r.stderr and "camera 'front'" in r.stderr and "lost" in r.stderr
    assert "saving the episode in progress" in r.stderr
    i = info(root)
    assert i["total_episodes"] == 1
    codes = stored_codes(root)
    assert codes[0] == 0 and codes[-1] <= 44 and len(codes) >= 30, codes
    assert_lerobot_check(root)


def test_a_camera_that_stops_with_on_loss_continue_repeats_flagged(tmp_path):
    src = codes_file(tmp_path, 30)
    root = tmp_path / "ds"
    cams = (f"{{front: {{type: reel, input: {src}, width: {W}, height: {H}, fps: 30, "
            f"fault: end-file, on_loss: continue}}}}")
    r = record(tmp_path, root, cams, 2.5)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "lost" in r.stderr
    i = info(root)
    assert i["total_episodes"] == 1 and i["total_frames"] >= 60
    figs = reel.episode_figures(root)[0]
    assert figs["camera/front/repeated_frames"] >= i["total_frames"] - 35, figs
