"""LeRobot 0.6.1's side of reel's depth-camera test (crates/reel/tests/depth.rs).

The depth camera is the lavfi ramp `depth_frame(k)` below (k = the source's frame number mod
90, written into the top-left 8x8 block as 500 + 100 k mm), so every frame of a dataset says
which input it was made from.

usage:
  lerobot_depth.py make WORK REEL_DATASET
      Reads REEL_DATASET with LeRobot's loader, finds each frame's k, writes WORK/lerobot with
      LeRobot's own writer (`LeRobotDataset.create`, streaming encoder, default
      DepthEncoderConfig) from the same inputs in the same episodes (other features: zeros, RGB a moving gradient),
      compares what LeRobot's loader returns for both (equal but at the quantiser's rounding
      boundaries, where NumPy's float32 log moves LeRobot's own code by one), compares the
      depth statistics, then merges both with LeRobot's `aggregate_datasets` in both orders
      and checks that every frame of each merge is its source's frame.
  lerobot_depth.py verify MERGED SRC [SRC ...]
      Checks that MERGED (e.g. `reel merge`'s output) holds the frames of SRC..., in order.
Prints one JSON line; exits 1 on any difference.
"""

import json
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np
from lerobot.configs.video import DepthEncoderConfig
from lerobot.datasets.aggregate import aggregate_datasets
from lerobot.datasets.lerobot_dataset import LeRobotDataset

H, W = 48, 64
KEY = "observation.images.depth"


def depth_frame(k: int) -> np.ndarray:
    """The lavfi graph of the test: geq on gray16le, k = N mod 90."""
    y, x = np.mgrid[0:H, 0:W]
    f = (x * 150 + y * 50 + k * 37) % 12000
    f[:8, :8] = 500 + 100 * k
    return f.astype(np.uint16)


def load(root: Path) -> LeRobotDataset:
    return LeRobotDataset("local/x", root=root)


def depth_mm(ds: LeRobotDataset) -> np.ndarray:
    return np.stack([ds[i][KEY].numpy().reshape(H, W) for i in range(len(ds))])


def codes_of(frames: np.ndarray) -> list[int]:
    out = []
    for f in frames:
        block = f[:8, :8].astype(np.float64)
        k = int(round((block.mean() - 500) / 100))
        if not (0 <= k < 90) or np.abs(block - (500 + 100 * k)).max() > 10:
            raise SystemExit(f"frame has no readable code: block {block.min()}..{block.max()}")
        out.append(k)
    return out


def boundary_mm() -> np.ndarray:
    """Millimetre values whose exact scaled log code sits within 1e-3 of a rounding boundary."""
    cfg = DepthEncoderConfig()
    mm = np.arange(65536, dtype=np.float64)
    lo = np.log(cfg.depth_min * 1000 + cfg.shift * 1000)
    hi = np.log(cfg.depth_max * 1000 + cfg.shift * 1000)
    exact = (np.log(mm + cfg.shift * 1000) - lo) / (hi - lo) * 4095
    frac = exact - np.floor(exact)
    return np.flatnonzero(np.abs(frac - 0.5) < 1e-3)


def compare(a: np.ndarray, b: np.ndarray, inputs: np.ndarray) -> dict:
    differ = a != b
    at_boundary = np.isin(inputs, boundary_mm())
    return {
        "values_differing": int(differ.sum()),
        "values_differing_elsewhere": int((differ & ~at_boundary).sum()),
        "max_abs_diff_mm": float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0,
    }


def lerobot_copy(reel_root: Path, dst: Path, codes: list[int]) -> None:
    info = json.loads((reel_root / "meta" / "info.json").read_text())
    feats = {}
    for k, f in info["features"].items():
        if k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            continue
        f = dict(f)
        f["shape"] = tuple(f["shape"])
        if f["dtype"] == "video":
            f["info"] = {"is_depth_map": f["shape"][2] == 1}
        feats[k] = f
    ds_reel = load(reel_root)
    ds = LeRobotDataset.create("local/lerobot", info["fps"], root=dst, robot_type=info["robot_type"],
                               features=feats, use_videos=True, streaming_encoding=True)
    i = 0
    for ep in range(ds_reel.meta.total_episodes):
        n = int(ds_reel.meta.episodes[ep]["length"])
        for _ in range(n):
            frame = {"task": "depth"}
            for k, f in feats.items():
                if k == KEY:
                    frame[k] = depth_frame(codes[i])[:, :, None]
                elif f["dtype"] == "video":
                    # A moving gradient (a constant picture is flagged by LeRobot's check).
                    n_px = int(np.prod(f["shape"]))
                    frame[k] = ((np.arange(n_px) * 7 + i * 5) % 256).astype(np.uint8).reshape(f["shape"])
                else:
                    frame[k] = np.zeros(f["shape"], dtype=np.float32)
            ds.add_frame(frame)
            i += 1
        ds.save_episode()
    ds.finalize()


def stats_diff(a: Path, b: Path) -> dict:
    sa = json.loads((a / "meta" / "stats.json").read_text())[KEY]
    sb = json.loads((b / "meta" / "stats.json").read_text())[KEY]
    out = {}
    for k in sa:
        va, vb = np.asarray(sa[k], dtype=np.float64), np.asarray(sb[k], dtype=np.float64)
        out[k] = float(np.abs(va - vb).max() / max(1.0, np.abs(vb).max()))
    return out


def verify(merged: Path, sources: list[Path]) -> dict:
    got = depth_mm(load(merged))
    want = np.concatenate([depth_mm(load(s)) for s in sources])
    return {"merged": str(merged), "frames": [int(got.shape[0]), int(want.shape[0])],
            "equal": bool(got.shape == want.shape and np.array_equal(got, want))}


def main() -> int:
    mode = sys.argv[1]
    if mode == "verify":
        r = verify(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
        print(json.dumps(r))
        return 0 if r["equal"] else 1
    work, reel = Path(sys.argv[2]), Path(sys.argv[3])
    reel_mm = depth_mm(load(reel))
    codes = codes_of(reel_mm)
    inputs = np.stack([depth_frame(k) for k in codes])
    lr = work / "lerobot"
    shutil.rmtree(lr, ignore_errors=True)
    lerobot_copy(reel, lr, codes)
    lr_mm = depth_mm(load(lr))
    out = {"frames": [int(reel_mm.shape[0]), int(lr_mm.shape[0])], "codes": codes}
    out.update(compare(reel_mm, lr_mm, inputs))
    out["reel_max_abs_error_mm"] = float(np.abs(reel_mm.astype(np.float64) - inputs).max())
    out["lerobot_max_abs_error_mm"] = float(np.abs(lr_mm.astype(np.float64) - inputs).max())
    out["stats_rel_diff"] = stats_diff(reel, lr)
    out["merges"] = []
    for order, roots in (("reel_first", [reel, lr]), ("lerobot_first", [lr, reel])):
        dst = work / f"merged_{order}"
        shutil.rmtree(dst, ignore_errors=True)
        try:
            aggregate_datasets(["local/a", "local/b"], "local/merged", roots=roots, aggr_root=dst)
            r = verify(dst, roots)
            r["error"] = None
        except Exception as e:  # noqa: BLE001
            r = {"merged": str(dst), "equal": False,
                 "error": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-800:]}"}
        r["order"] = order
        out["merges"].append(r)
    print(json.dumps(out))
    ok = (out["frames"][0] == out["frames"][1] and out["values_differing_elsewhere"] == 0
          and all(m["equal"] for m in out["merges"])
          and all(v < 1e-6 for k, v in out["stats_rel_diff"].items() if not k.startswith("q")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
