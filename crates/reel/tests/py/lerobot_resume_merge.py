"""LeRobot 0.6.1's own resume and merge on a reel dataset with per-tick files.

usage: lerobot_resume_merge.py DATASET WORKDIR

1. copies DATASET twice; on the first copy, `LeRobotDataset.resume` appends one episode
   (same features, frames taken from the dataset itself) and finalizes;
2. `lerobot.datasets.aggregate.aggregate_datasets` merges the two copies into WORKDIR/merged;
3. loads the resumed and the merged dataset with `LeRobotDataset` and indexes every frame's
   first/last item; checks the episode and frame totals, and that the resumed copy's
   meta/reel/ticks files are byte-identical to the original's (LeRobot left them alone).
Prints one JSON line with what it found; exits 1 on a mismatch.
"""
import hashlib, json, os, shutil, sys, tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
tmp = tempfile.mkdtemp(prefix="lr_resume_")
os.environ["HF_DATASETS_CACHE"] = os.path.join(tmp, "cache")
os.environ["HF_LEROBOT_HOME"] = os.path.join(tmp, "home")

import numpy as np  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402
from lerobot.datasets.aggregate import aggregate_datasets  # noqa: E402

src, work = Path(sys.argv[1]), Path(sys.argv[2])
a, b = work / "a", work / "b"
for d in (a, b):
    shutil.copytree(src, d)


def digests(root):
    t = root / "meta" / "reel" / "ticks"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(t.rglob("*.parquet"))}


before = digests(a)
orig = LeRobotDataset("local/a", root=a)
n_ep, n_fr = orig.meta.total_episodes, orig.meta.total_frames
item = orig[0]
features = orig.meta.features

ds = LeRobotDataset.resume("local/a", root=a)
length = 5
for i in range(length):
    frame = {"task": "resumed by LeRobot"}
    for k, f in features.items():
        if k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            continue
        v = item[k]
        if f["dtype"] == "video":
            frame[k] = (v.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        else:
            frame[k] = v.numpy()
    ds.add_frame(frame)
ds.save_episode()
ds.finalize()
after = digests(a)

resumed = LeRobotDataset("local/a", root=a)
ok = resumed.meta.total_episodes == n_ep + 1 and resumed.meta.total_frames == n_fr + length
for i in (0, len(resumed) - 1):
    resumed[i]

merged_root = work / "merged"
aggregate_datasets(["local/a", "local/b"], "local/merged", roots=[a, b], aggr_root=merged_root)
merged = LeRobotDataset("local/merged", root=merged_root)
ok = ok and merged.meta.total_episodes == 2 * n_ep + 1 and len(merged) == 2 * n_fr + length
for i in (0, len(merged) - 1):
    merged[i]
out = {
    "episodes": n_ep, "frames": n_fr,
    "resumed_episodes": resumed.meta.total_episodes, "merged_episodes": merged.meta.total_episodes,
    "merged_frames": len(merged), "ticks_files": len(before),
    "ticks_untouched": before == after and len(before) > 0,
}
print(json.dumps(out))
sys.exit(0 if ok and out["ticks_untouched"] else 1)
