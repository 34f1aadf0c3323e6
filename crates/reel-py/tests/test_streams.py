"""Side streams (``Writer.add_sample``) and per-frame capture times (``reel.streams``): a 500 Hz
stream and a 48 kHz audio-like stream beside a 30 fps loop, 3 episodes; every sample stored
once, on the frames' clock, ignored by LeRobot's loader and ``aggregate_datasets``."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import reel
from conftest import assert_lerobot_check, features, frame_image

FPS = 30
PERIOD = 1_000_000_000 // FPS
H, W = 64, 96
FRAMES = 24
PULSE = {0: 5, 1: 11, 2: 17}  # episode -> frame whose capture shows the pulse


def digest(root: Path) -> dict:
    base = root / "meta" / "reel" / "streams"
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*.parquet"))}


def record(root: Path):
    """Three episodes with synthetic capture times (in the past, on reel's clock): the camera is
    bright on one frame per episode; the streams carry the same pulse from its capture time on
    for one frame period. Returns what was added, per episode."""
    w = reel.Writer.create(root, FPS, features((("front", H, W),)), vcodec="libsvtav1", robot_type="unit_test")
    added = {}
    t0 = reel.now_ns() - 60_000_000_000
    for ep in range(3):
        start = t0 + ep * 10_000_000_000
        caps = [start + k * PERIOD + 3_000_000 for k in range(FRAMES)]  # frames captured 3 ms into each tick
        pulse_ns = caps[PULSE[ep]]
        end = caps[-1] + PERIOD
        servo_t = np.arange(start, end, 2_000_000, dtype=np.int64)  # 500 Hz
        servo = np.zeros((len(servo_t), 6), np.float32)
        on = (servo_t >= pulse_ns) & (servo_t < pulse_ns + PERIOD)
        servo[on, 0] = 1.0
        servo[:, 1] = np.arange(len(servo_t))
        audio_t = start + (np.arange((end - start) * 48_000 // 1_000_000_000) * 1_000_000_000) // 48_000
        audio = np.zeros(len(audio_t), np.int16)
        audio[(audio_t >= pulse_ns) & (audio_t < pulse_ns + PERIOD)] = 20_000
        s = 0
        a = 0
        for k in range(FRAMES):
            img = frame_image(k, H, W) // 4 + (150 if k == PULSE[ep] else 0)  # textured, bright on the pulse
            w.add_frame({"observation.images.front": img, "observation.state": np.zeros(6, np.float32),
                         "action": np.zeros(6, np.float32), "task": "pulse"}, captured_ns=caps[k])
            # the loop hands over what arrived since the last tick: servo one by one, audio in blocks
            tick_end = caps[k] + PERIOD
            while s < len(servo_t) and servo_t[s] < tick_end:
                w.add_sample("servo", int(servo_t[s]), servo[s])
                s += 1
            nxt = int(np.searchsorted(audio_t, tick_end))
            if nxt > a:
                w.add_sample("audio", audio_t[a:nxt], audio[a:nxt])
                a = nxt
        w.add_sample("servo", servo_t[s:], servo[s:])
        w.add_sample("audio", audio_t[a:], audio[a:])
        w.save_episode()
        added[ep] = (caps, servo_t, servo, audio_t, audio)
    w.finalize()
    return added


def test_streams_beside_a_30fps_loop_on_the_frames_clock(tmp_path):
    root = tmp_path / "ds"
    added = record(root)
    assert reel.streams.names(root) == ["audio", "servo"]
    for ep, (caps, servo_t, servo, audio_t, audio) in added.items():
        t, v = reel.streams.read(root, ep, "servo")
        np.testing.assert_array_equal(t, servo_t)  # every sample once, in order
        np.testing.assert_array_equal(v, servo)
        assert v.dtype == np.float32 and v.shape == (len(servo_t), 6)
        assert np.all(np.diff(t) > 0)
        t, v = reel.streams.read(root, ep, "audio")
        np.testing.assert_array_equal(t, audio_t)
        np.testing.assert_array_equal(v[:, 0], audio)
        assert v.dtype == np.int16 and abs(len(t) - 48_000 * (FRAMES * PERIOD) / 1e9) < 48_000 / FPS + 2
        # per-frame capture times through the same reader, to the microsecond
        ct, _ = reel.streams.read(root, ep, "front")
        np.testing.assert_array_equal(ct // 1000, np.array(caps) // 1000)
    with pytest.raises(ValueError, match="no stream 'nope'"):
        reel.streams.read(root, 0, "nope")

    # The pulse: the brightest decoded frame's capture time and the stream's rising edge agree
    # within one frame period; aligned to that camera's frames, the stream is on at that frame.
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("unit/streams", root=root)
    for ep in range(3):
        lo = ds.meta.episodes["dataset_from_index"][ep]
        bright = [float(ds[lo + k]["observation.images.front"].mean()) for k in range(FRAMES)]
        k = int(np.argmax(bright))
        assert k == PULSE[ep]
        cap = reel.streams.frame_times(root, ep, "front")[k]
        for stream, col in (("servo", 0), ("audio", 0)):
            t, v = reel.streams.read(root, ep, stream)
            edge = t[np.argmax(v[:, col] > 0)]
            assert abs(int(edge) - int(cap)) < PERIOD, (stream, edge, cap)
            at, av = reel.streams.read(root, ep, stream, aligned=True, frame_clock="front")
            # previous sample per frame: the pulse starts at frame k's capture, so the first
            # frame whose latest sample is inside it is k (a sample exactly at that time) or k + 1
            ft = reel.streams.frame_times(root, ep, "front")
            want = [v[max(i for i in range(len(t)) if t[i] <= f), col] for f in ft]
            np.testing.assert_array_equal(av[:, col], want)
            assert av.shape[0] == FRAMES and av[k + 1, col] > 0 and av[k - 1, col] == 0
            assert np.all(at <= reel.streams.frame_times(root, ep, "front"))  # previous sample, never later

    before = digest(root)
    assert_lerobot_check(root)
    # aggregate_datasets on two datasets with streams: passes, and leaves their streams alone
    from lerobot.datasets.aggregate import aggregate_datasets

    other = tmp_path / "ds2"
    shutil.copytree(root, other)
    aggregate_datasets(["unit/a", "unit/b"], "unit/ab", roots=[root, other], aggr_root=tmp_path / "ab")
    # (not --strict: LeRobot's aggregate writes stats of index/episode_index from the first
    # source only and list<> columns, its own bugs, spec §9; reel's report.rs test loads it too)
    ab = LeRobotDataset("unit/ab", root=tmp_path / "ab")
    assert ab.meta.total_episodes == 6 and len(ab) == 6 * FRAMES
    assert float(ab[FRAMES * 3 + PULSE[0]]["observation.images.front"].mean()) > 0.5
    assert digest(root) == before and digest(other) == before


def test_bad_samples_are_refused_with_the_streams_name(tmp_path):
    w = reel.Writer.create(tmp_path / "ds", FPS, features((("front", H, W),)), vcodec="libx264")
    w.add_sample("imu", 100, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="imu.*monotonic"):
        w.add_sample("imu", 50, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="imu"):
        w.add_sample("imu", 200, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="not valid"):
        w.add_sample("../up", 200, np.zeros(1))
    with pytest.raises(ValueError, match="not supported"):
        w.add_sample("c", 200, np.zeros(1, np.complex64))
    w.discard_episode()
    w.add_sample("imu", 10, np.zeros(4, np.float32))  # a new episode declares it anew


def test_lerobot_resume_appends_episodes_and_leaves_the_streams_byte_equal(tmp_path):
    """LeRobot's own writer (``LeRobotDataset.resume`` + ``add_frame``/``save_episode``/
    ``finalize``) appends an episode to a reel dataset with streams: the result passes the strict
    check, LeRobot loads all 4 episodes, and every stream file is byte-equal to before."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path / "ds"
    record(root)
    before = digest(root)
    assert len(before) == 6  # 2 streams x 3 episodes
    ds = LeRobotDataset.resume("unit/streams", root=root)
    for k in range(FRAMES):
        ds.add_frame({"observation.images.front": frame_image(k, H, W),
                      "observation.state": np.zeros(6, np.float32),
                      "action": np.zeros(6, np.float32), "task": "pulse"})
    ds.save_episode()
    ds.finalize()
    assert digest(root) == before
    assert reel.streams.names(root) == ["audio", "servo"]
    t, _ = reel.streams.read(root, 0, "servo")
    assert len(t) > 0
    assert_lerobot_check(root)
    again = LeRobotDataset("unit/streams", root=root)
    assert again.meta.total_episodes == 4 and len(again) == 4 * FRAMES
