"""reel.DemoRecorder from Python: a camera reel reads and a camera fed by the caller (or by a
frame callback) composited into one MP4 that decodes, with every pushed camera's frames in it."""

from __future__ import annotations

import time

import numpy as np
import pytest

import reel


def decode_count(path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_pushed_and_ffmpeg_cameras_make_one_video(tmp_path):
    out = tmp_path / "demo.mp4"
    rec = reel.DemoRecorder.start(out, cameras={"main": None, "inset": "lavfi:testsrc@160x120@30"},
                                  size=(640, 360))
    with pytest.raises(ValueError, match="not a pushed camera"):
        rec.push("inset", np.zeros((120, 160, 3), np.uint8))
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < 1.5:
        rec.push("main", np.full((240, 320, 3), (k * 8) % 256, np.uint8))
        k += 1
        time.sleep(1 / 30)
    stats = rec.stop()
    assert out.exists() and not (tmp_path / "demo.mp4.partial").exists()
    assert stats["frames_written"] > 0
    assert stats["cameras"]["main"][0] > 0, "the pushed camera's frames are in the video"
    assert decode_count(out) == stats["frames_written"]
    with pytest.raises(reel.ReelError, match="stopped"):
        rec.push("main", np.zeros((240, 320, 3), np.uint8))


def test_a_frame_callback_feeds_the_recorder(tmp_path):
    calls = [0]

    def frames():
        calls[0] += 1
        return {"cam": np.full((3, 96, 128), calls[0] % 200, np.uint8)}  # CHW works too

    out = tmp_path / "cb.mp4"
    with reel.DemoRecorder.start(out, frame_callback=frames, size=(256, 144), fps=15) as rec:
        time.sleep(1.2)
    assert calls[0] > 5
    assert rec.callback_error is None
    assert decode_count(out) > 0
