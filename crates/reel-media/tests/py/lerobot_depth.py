"""LeRobot 0.6.1's side of reel's depth test (run in the LeRobot venv by
crates/reel-media/tests/depth.rs).

Given a directory with reel's files (`input.u16`: N frames of H x W uint16 millimetres,
`table.u16`: reel's code for every uint16 value, `reel.mp4`: reel's encoding of the
frames), it checks that
  1. reel's table equals LeRobot's `quantize_depth` for all 65536 millimetre values but
     at rounding boundaries, where NumPy's float32 `log` (not correctly rounded, CPU
     dependent) moves LeRobot's code by one;
  2. LeRobot's own writer (TIFFs by `write_image`, `encode_video_frames` with the default
     `DepthEncoderConfig`) encodes the same frames into `lerobot.mp4`;
  3. LeRobot's decoder (`decode_video_frames(..., is_depth=True)` + `dequantize_depth`, as
     its dataset reader does) returns the same millimetres from both files, frame by frame, for every reading
     that is not such a boundary case.
It prints one JSON line with the figures and exits 1 on any difference.
"""

import json
import sys
from pathlib import Path

import numpy as np
from lerobot.configs.video import DepthEncoderConfig
from lerobot.datasets.depth_utils import dequantize_depth, quantize_depth
from lerobot.datasets.image_writer import write_image
from lerobot.datasets.video_utils import decode_video_frames, encode_video_frames


def decode_mm(path: Path, n: int, fps: int) -> np.ndarray:
    ts = [i / fps for i in range(n)]
    frames = decode_video_frames(path, ts, 1e-4, backend="pyav", is_depth=True)
    cfg = DepthEncoderConfig()
    mm = dequantize_depth(
        frames,
        depth_min=cfg.depth_min,
        depth_max=cfg.depth_max,
        shift=cfg.shift,
        use_log=cfg.use_log,
        output_unit="mm",
    )
    return np.asarray(mm).reshape(n, -1)


def main() -> int:
    work, n, h, w, fps = Path(sys.argv[1]), *map(int, sys.argv[2:6])
    frames = np.fromfile(work / "input.u16", dtype="<u2").reshape(n, h, w)
    table = np.fromfile(work / "table.u16", dtype="<u2")
    out: dict = {}

    mm = np.arange(65536, dtype=np.uint16)
    lerobot_table = np.asarray(quantize_depth(mm.reshape(256, 256), video_backend=None)).reshape(-1)
    diff = np.flatnonzero(lerobot_table != table)
    out["table_mismatches"] = int(diff.size)
    out["table_first_mismatches"] = [[int(i), int(table[i]), int(lerobot_table[i])] for i in diff[:5]]
    # Where the codes differ, the exact (float64) scaled value must sit at a rounding
    # boundary and the codes one apart: NumPy's float32 log is not correctly rounded.
    cfg = DepthEncoderConfig()
    lo, hi = np.log(cfg.depth_min * 1000 + cfg.shift * 1000), np.log(cfg.depth_max * 1000 + cfg.shift * 1000)
    exact = (np.log(mm.astype(np.float64) + cfg.shift * 1000) - lo) / (hi - lo) * 4095
    frac = exact[diff] - np.floor(exact[diff])
    out["mismatch_max_distance_from_half"] = float(np.abs(frac - 0.5).max()) if diff.size else 0.0
    out["mismatch_max_code_step"] = (
        int(np.abs(table[diff].astype(int) - lerobot_table[diff].astype(int)).max()) if diff.size else 0
    )

    tiffs = work / "tiffs"
    tiffs.mkdir(exist_ok=True)
    for i, f in enumerate(frames):
        write_image(f, tiffs / f"frame-{i:06d}.tiff")
    encode_video_frames(tiffs, work / "lerobot.mp4", fps, DepthEncoderConfig(), overwrite=True)

    ours = decode_mm(work / "reel.mp4", n, fps)
    theirs = decode_mm(work / "lerobot.mp4", n, fps)
    out["frames"] = [int(ours.shape[0]), int(theirs.shape[0])]
    out["values_differing"] = int(np.count_nonzero(ours != theirs))
    # Pixels whose reading is one of the table's boundary cases may differ, no other.
    out["values_at_boundaries"] = int(np.count_nonzero(np.isin(frames, diff)))
    out["values_differing_elsewhere"] = int(
        np.count_nonzero((ours != theirs) & ~np.isin(frames.reshape(n, -1), diff))
    )
    err = np.abs(theirs.astype(np.float64) - frames.reshape(n, -1).astype(np.float64))
    out["lerobot_max_abs_error_mm"] = float(err.max())
    ours_err = np.abs(ours.astype(np.float64) - frames.reshape(n, -1).astype(np.float64))
    out["reel_max_abs_error_mm"] = float(ours_err.max())
    print(json.dumps(out))
    ok = (
        out["table_mismatches"] <= 64
        and out["mismatch_max_code_step"] <= 1
        and out["mismatch_max_distance_from_half"] < 1e-3
        and out["values_differing_elsewhere"] == 0
        and out["frames"] == [n, n]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
