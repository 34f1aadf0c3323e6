"""Merges reel datasets with LeRobot-written ones through LeRobot 0.6.1's own
`aggregate_datasets`, in both orders, and reports what happened (JSON on stdout).

usage: lerobot_merge.py WORKDIR CODEC:REEL_DATASET [...]
  CODEC is LeRobot's vcodec name (h264, hevc, libsvtav1); for each one a LeRobot dataset
  with the same features (2 episodes x 20 frames, 96x64 camera 'front') is written with
  LeRobot's own writer, then `aggregate_datasets([reel, lerobot])` and
  `aggregate_datasets([lerobot, reel])` are run.
"""

import json
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np
from lerobot.configs.video import RGBEncoderConfig
from lerobot.datasets.aggregate import aggregate_datasets
from lerobot.datasets.lerobot_dataset import LeRobotDataset

JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]


def lerobot_dataset(root: Path, vcodec: str) -> None:
    features = {
        "action": {"dtype": "float32", "shape": (6,), "names": JOINTS},
        "observation.state": {"dtype": "float32", "shape": (6,), "names": JOINTS},
        "observation.images.front": {"dtype": "video", "shape": (64, 96, 3), "names": ["height", "width", "channels"]},
    }
    ds = LeRobotDataset.create(
        "local/lerobot", 30, root=root, robot_type="sim_so100", features=features,
        use_videos=True, rgb_encoder=RGBEncoderConfig(vcodec=vcodec),
    )
    rng = np.random.default_rng(0)
    for _ in range(2):
        for i in range(20):
            img = np.full((64, 96, 3), (i * 10) % 255, dtype=np.uint8)
            img[:, (i * 4) % 96] = 255
            ds.add_frame({
                "action": rng.random(6, dtype=np.float32),
                "observation.state": rng.random(6, dtype=np.float32),
                "observation.images.front": img,
                "task": "Move the arm through its range",
            })
        ds.save_episode()
    ds.finalize()


def main() -> None:
    work = Path(sys.argv[1])
    out = []
    for spec in sys.argv[2:]:
        codec, reel = spec.split(":", 1)
        reel = Path(reel)
        lr = work / f"lerobot_{codec}"
        shutil.rmtree(lr, ignore_errors=True)
        lerobot_dataset(lr, codec)
        for order, roots in (("reel_first", [reel, lr]), ("lerobot_first", [lr, reel])):
            dst = work / f"merged_{codec}_{order}"
            shutil.rmtree(dst, ignore_errors=True)
            try:
                aggregate_datasets(["local/a", "local/b"], "local/merged", roots=roots, aggr_root=dst)
                err = None
            except Exception as e:  # noqa: BLE001
                err = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-600:]}"
            out.append({"codec": codec, "order": order, "merged": str(dst), "error": err})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
