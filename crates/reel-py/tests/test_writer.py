"""reel.Writer from Python: what it records loads in LeRobot, every input form gives the same
pixels, bad input is a clear exception that loses nothing, resume reads the schema, the commit
gate holds commits while frames keep arriving, and the timing figures are stored."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import reel
from conftest import features, frame_image, info


def episodes_table(root: Path):
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    return pq.read_table(files).to_pandas() if len(files) == 1 else \
        __import__("pandas").concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def row(k: int, h: int, w: int, task: str = "pick", **images):
    r = {"action": np.full(6, k, np.float32), "observation.state": np.arange(6, dtype=np.float32) + k,
         "task": task}
    r["observation.images.front"] = images.get("front", frame_image(k, h, w))
    return r


def test_round_trip_loads_in_lerobot_with_values_tasks_and_timing(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / "ds"
    w = reel.Writer.create(root, 30, features(), robot_type="unit_test", vcodec="libsvtav1",
                           durable=False)
    lengths = [20, 15]
    for ep, n in enumerate(lengths):
        for k in range(n):
            t = reel.now_ns()
            w.add_frame(row(k, 96, 128, task=f"task {ep}"), captured_ns=t - 2_000_000)
        assert w.frames_in_episode == n
        assert w.save_episode() == ep
    saved = w.wait_saved(timeout=120)
    assert [s["episode_index"] for s in saved] == [0, 1]
    assert [s["frames"] for s in saved] == lengths
    w.finalize()
    assert w.closed

    i = info(root)
    assert (i["total_episodes"], i["total_frames"], i["robot_type"]) == (2, 35, "unit_test")
    ds = LeRobotDataset("local/unit", root=root)
    assert len(ds) == 35
    for idx, (ep, k) in {0: (0, 0), 19: (0, 19), 20: (1, 0), 34: (1, 14)}.items():
        item = ds[idx]
        assert int(item["episode_index"]) == ep and int(item["frame_index"]) == k
        assert abs(float(item["timestamp"]) - k / 30) < 1e-6
        np.testing.assert_array_equal(item["action"].numpy(), np.full(6, k, np.float32))
        assert item["task"] == f"task {ep}"
        img = item["observation.images.front"].numpy()  # CHW float in [0, 1]
        assert img.shape == (3, 96, 128)
        src = frame_image(k, 96, 128).transpose(2, 0, 1) / 255.0
        assert abs(img.mean() - src.mean()) < 0.03, "decoded frame is not the frame recorded"
    # The timing figures of the Python loop, with the frames' age from the capture times given,
    # beside LeRobot's tables (which hold only LeRobot's columns).
    assert not [c for c in episodes_table(root).columns if c.startswith("reel/")]
    figs = reel.episode_figures(root)
    assert sorted(figs) == [0, 1]
    for f in figs.values():
        assert f["missed_deadlines"] >= 0
        assert f["camera/front/age_p50_ms"] >= 2.0
        assert f["section/record/p50_ms"] > 0
    # One stored tick per frame, as reel's own loop stores them (reel report draws them).
    ticks = sorted((root / "meta" / "reel" / "ticks").rglob("*.parquet"))
    assert ticks, "per-tick figures are stored"
    assert sum(pq.read_metadata(t).num_rows for t in ticks) == 35


def test_every_input_form_gives_the_same_pixels(tmp_path):
    """HWC/CHW, uint8/float32/float64, torch tensors, PIL images and non-contiguous views of the
    same frames encode to the same video (deterministic x264, one thread)."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from PIL import Image

    h, w = 64, 96
    root = tmp_path / "forms"
    wr = reel.Writer.create(root, 30, features((("front", h, w),)), vcodec="libx264",
                            encoder_threads=1, durable=False, deferred="never")
    base = [frame_image(k, h, w) for k in range(8)]
    for k, img in enumerate(base):
        wr.add_frame(row(k, h, w, front=img))
    wr.save_episode()

    def float_of(img, dt):  # (x + 0.5) / 255 * 255 truncates back to x, as LeRobot converts
        return ((img.astype(np.float64) + 0.5) / 255.0).astype(dt)

    big = np.zeros((h, w + 16, 3), np.uint8)
    forms = [
        lambda img: img.transpose(2, 0, 1).copy(),                  # CHW uint8
        lambda img: float_of(img, np.float32),                      # HWC float32
        lambda img: float_of(img, np.float64).transpose(2, 0, 1),   # CHW float64, a strided view
        lambda img: torch.from_numpy(img.copy()),                   # torch HWC uint8
        lambda img: torch.from_numpy(img.transpose(2, 0, 1).copy()),  # torch CHW uint8
        lambda img: Image.fromarray(img),                           # PIL
        lambda img: (big.__setitem__((slice(None), slice(8, 8 + w)), img), big[:, 8:8 + w])[1],  # non-contiguous
        lambda img: np.ascontiguousarray(img[::-1])[::-1],          # negative strides
    ]
    for k, (img, form) in enumerate(zip(base, forms)):
        wr.add_frame(row(k, h, w, front=form(img)))
    wr.save_episode()
    wr.finalize()
    ds = LeRobotDataset("local/forms", root=root)
    for k in range(8):
        a = ds[k]["observation.images.front"]
        b = ds[8 + k]["observation.images.front"]
        assert torch.equal(a, b), f"frame {k}: form {k} decodes differently from HWC uint8"


def test_bad_input_raises_a_clear_error_and_loses_nothing(tmp_path):
    h, w = 64, 64
    wr = reel.Writer.create(tmp_path / "bad", 30, features((("front", h, w),)), vcodec="libx264",
                            durable=False)
    good = row(0, h, w)
    wr.add_frame(good)
    cases = [
        ({**good, "observation.images.front": np.zeros((h, w + 2, 3), np.uint8)}, "shape"),
        ({**good, "observation.images.front": np.zeros((h, w, 3), np.int16)}, "dtype"),
        ({**good, "observation.images.front": np.full((h, w, 3), 1.5, np.float32)}, "[0, 1]"),
        ({**good, "observation.state": np.zeros(6, np.float64)}, "dtype"),
        ({**good, "observation.state": np.zeros(5, np.float32)}, "shape"),
        ({k: v for k, v in good.items() if k != "action"}, 'missing features ["action"]'),
        ({**good, "observation.extra": np.zeros(1, np.float32)}, "observation.extra"),
        ({**good, "task": 3}, "task must be a string"),
        ({k: v for k, v in good.items() if k != "task"}, "task"),
        ("not a dict", "frame must be a dict"),
    ]
    for frame, words in cases:
        with pytest.raises(ValueError, match=None) as e:
            wr.add_frame(frame)
        assert words in str(e.value), f"{words!r} not in {e.value}"
    assert wr.frames_in_episode == 1, "a refused frame was counted"
    wr.add_frame(row(1, h, w))
    wr.save_episode()
    with pytest.raises(ValueError, match="empty episode"):
        wr.save_episode()
    wr.add_frame(row(2, h, w))
    with pytest.raises(ValueError, match="1 frame"):
        wr.save_episode()
    wr.discard_episode()
    saved = wr.wait_saved()
    assert [s["frames"] for s in saved] == [2]
    wr.finalize()
    with pytest.raises(reel.ReelError, match="closed"):
        wr.add_frame(row(2, h, w))
    assert wr.finalize()["already_finalized"]
    assert info(tmp_path / "bad")["total_frames"] == 2


def test_features_reel_does_not_record_are_refused_at_create(tmp_path):
    base = features((("front", 64, 64),))
    for name, spec, words in [
        ("observation.images.front", {"dtype": "image", "shape": (64, 64, 3), "names": None}, "dtype 'image'"),
        ("observation.images.depth", {"dtype": "video", "shape": (64, 64, 1), "names": None,
                                      "info": {"is_depth_map": False}}, "depth map"),
        ("observation.images.depth", {"dtype": "video", "shape": (64, 64, 3), "names": None,
                                      "info": {"is_depth_map": True}}, "depth map"),
        ("language_events", {"dtype": "language", "shape": (1,), "names": None}, "language"),
    ]:
        with pytest.raises(ValueError) as e:
            reel.Writer.create(tmp_path / name.replace(".", "_"), 30, {**base, name: spec})
        assert words in str(e.value) and name in str(e.value), str(e.value)
        assert not (tmp_path / name.replace(".", "_")).exists(), "refused, yet something was created"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        reel.Writer.create(tmp_path / "full", 30, base)


def test_resume_reads_the_schema_and_refuses_other_features(tmp_path):
    root = tmp_path / "res"
    f = features((("front", 64, 64),))
    wr = reel.Writer.create(root, 15, f, robot_type="arm", vcodec="libx264", durable=False)
    for k in range(5):
        wr.add_frame(row(k, 64, 64))
    wr.save_episode()
    wr.finalize()
    with pytest.raises(ValueError) as e:
        reel.Writer.resume(root, features={**f, "observation.extra": {"dtype": "float32", "shape": (1,), "names": None}})
    assert "observation.extra" in str(e.value)
    with pytest.raises(ValueError, match="fps"):
        reel.Writer.resume(root, fps=30)
    wr = reel.Writer.resume(root, durable=False)
    assert (wr.fps, wr.robot_type) == (15, "arm")
    assert wr.features["observation.images.front"]["shape"] == (64, 64, 3)
    assert wr.totals() == (1, 5)
    for k in range(4):
        wr.add_frame(row(k, 64, 64, task="second"))
    assert wr.save_episode() == 1
    wr.finalize()
    i = info(root)
    assert (i["total_episodes"], i["total_frames"], i["total_tasks"]) == (2, 9, 2)


def test_commit_gate_holds_commits_while_another_thread_keeps_recording(tmp_path):
    root = tmp_path / "gate"
    wr = reel.Writer.create(root, 30, features((("front", 64, 64),)), vcodec="libx264",
                            durable=False)
    stop = threading.Event()
    errors: list[BaseException] = []
    added = [0]

    def loop():
        try:
            k = 0
            while not stop.is_set():
                wr.add_frame(row(k, 64, 64))
                added[0] += 1
                k += 1
                if k % 10 == 0:
                    wr.save_episode()
                time.sleep(0.002)
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=loop)
    t.start()
    while added[0] < 25:
        time.sleep(0.01)
    wr.wait_saved()
    with wr.commit_gate():
        before = (root / "meta" / "info.json").read_bytes()
        eps_before = wr.totals()[0]
        at = added[0]
        while added[0] < at + 40:  # the loop goes on while the gate is held
            time.sleep(0.01)
        assert (root / "meta" / "info.json").read_bytes() == before
        assert wr.totals()[0] == eps_before
        assert wr.backlog()["pending_saves"] >= 3
    stop.set()
    t.join()
    assert not errors, errors
    wr.finalize()
    assert info(root)["total_episodes"] >= eps_before + 3


def test_missed_deadlines_are_counted_from_add_frame_calls(tmp_path):
    wr = reel.Writer.create(tmp_path / "t", 30, features((("front", 64, 64),)), vcodec="libx264",
                            durable=False)
    period = 1 / 30
    t0 = time.monotonic()
    for k in range(10):
        while time.monotonic() < t0 + k * period:
            pass
        if k == 6:
            time.sleep(0.15)  # a stall of ~4 periods before this tick
        wr.add_frame(row(k, 64, 64))
    timing = wr.timing()
    assert timing["ticks"] == 10
    assert timing["missed_deadlines"] >= 1
    assert timing["late_start_p99_ms"] > 50, "the stalled tick came over 100 ms late"
    wr.save_episode()
    wr.finalize()
    assert reel.episode_figures(tmp_path / "t")[0]["missed_deadlines"] == timing["missed_deadlines"]


def test_depth_camera_takes_uint16_millimetres_in_lerobot_shapes(tmp_path):
    """A depth feature as LeRobot declares it records (H, W, 1) and (H, W) uint16 frames; the
    info block is LeRobot's depth block; float depth and a wrong shape are clear errors."""
    f = features((("front", 64, 64),))
    f["observation.images.depth"] = {"dtype": "video", "shape": (48, 64, 1),
                                     "names": ["height", "width", "channels"],
                                     "info": {"is_depth_map": True}}
    root = tmp_path / "depth"
    wr = reel.Writer.create(root, 30, f, vcodec="libx264", durable=False,
                            depth_encoder={"vcodec": "hevc", "depth_max": 8.0})
    ramp = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 3)
    for k in range(6):
        r = row(k, 64, 64)
        d = ramp + k
        r["observation.images.depth"] = d[:, :, None] if k % 2 else d
        wr.add_frame(r)
    bad = row(6, 64, 64)
    bad["observation.images.depth"] = ramp.astype(np.float32)
    with pytest.raises(ValueError, match="uint16 millimetres"):
        wr.add_frame(bad)
    bad["observation.images.depth"] = ramp[:40]
    with pytest.raises(ValueError, match="expected shape"):
        wr.add_frame(bad)
    wr.save_episode()
    wr.finalize()
    di = info(root)["features"]["observation.images.depth"]["info"]
    assert (di["is_depth_map"], di["depth_unit"], di["video.codec"], di["video.pix_fmt"]) == \
        (True, "mm", "hevc", "gray12le")
    assert di["video.depth_max"] == 8.0
    stats = json.loads((root / "meta" / "stats.json").read_text())["observation.images.depth"]
    assert stats["max"] == [[[float(ramp.max() + 5)]]] and stats["min"] == [[[0.0]]]
    with pytest.raises(ValueError, match="libx265"):
        reel.Writer.create(tmp_path / "d2", 30, f, depth_encoder={"vcodec": "libsvtav1"})
