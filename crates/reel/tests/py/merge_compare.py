"""Checks a `reel merge` output with LeRobot 0.6.1's own loader: every frame of every source,
in order, has the same values and the same decoded image in the merged dataset.

usage: merge_compare.py MERGED SRC [SRC...]   (exit 1 with the first difference)

A source written as `~SRC` was re-encoded by the merge: its images are compared within a
tolerance (mean absolute difference below TOL, a lossy codec's error) and each merged image
must be nearer to its own source frame than to that frame's neighbours in the episode, so a
shifted or repeated frame fails.
"""

import sys

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def load(root):
    return LeRobotDataset("local/x", root=root)


TOL = 0.04


def mad(x, y) -> float:
    return float((x.float() - y.float()).abs().mean())


def near_own_frame(src, i, k, got) -> str | None:
    """None when `got` (merged image of source frame i) is within TOL of it and nearer to it
    than to its neighbours; else what is wrong."""
    own = src[i][k]
    d = mad(own, got)
    if d >= TOL:
        return f"mean abs difference {d:.4f} >= {TOL}"
    ep = int(src[i]["episode_index"])
    for j in (i - 1, i + 1):
        if 0 <= j < len(src) and int(src[j]["episode_index"]) == ep:
            other = src[j][k]
            if mad(own, other) > 2 * TOL and mad(other, got) <= d:
                return f"nearer to source frame {j} ({mad(other, got):.4f}) than to its own ({d:.4f})"
    return None


def main() -> int:
    merged = load(sys.argv[1])
    pos = 0
    ep_off = 0
    for arg in sys.argv[2:]:
        approx = arg.startswith("~")
        src_root = arg[1:] if approx else arg
        src = load(src_root)
        for i in range(len(src)):
            a, b = src[i], merged[pos]
            for k, v in a.items():
                if k == "task":
                    if v != b[k]:
                        print(f"{src_root} frame {i}: task {v!r} != {b[k]!r}")
                        return 1
                    continue
                if not isinstance(v, torch.Tensor):
                    continue
                want = v
                if k == "index":
                    want = v + (pos - i)
                elif k == "episode_index":
                    want = v + ep_off
                elif k == "task_index":
                    continue  # renumbered by task text (checked through 'task')
                elif approx and k in src.meta.video_keys:
                    why = near_own_frame(src, i, k, b[k])
                    if why:
                        print(f"{src_root} frame {i} (merged {pos}): {k} re-encoded: {why}")
                        return 1
                    continue
                if not torch.equal(want, b[k]):
                    print(f"{src_root} frame {i} (merged {pos}): {k} differs: {want} != {b[k]}")
                    return 1
            pos += 1
        ep_off += src.meta.total_episodes
    if pos != len(merged):
        print(f"merged has {len(merged)} frames, the sources {pos}")
        return 1
    print(f"ok: {pos} frames equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
