"""Checks a `reel merge` output with LeRobot 0.6.1's own loader: every frame of every source,
in order, has the same values and the same decoded image in the merged dataset.

usage: merge_compare.py MERGED SRC [SRC...]   (exit 1 with the first difference)
"""

import sys

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def load(root):
    return LeRobotDataset("local/x", root=root)


def main() -> int:
    merged = load(sys.argv[1])
    pos = 0
    ep_off = 0
    for src_root in sys.argv[2:]:
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
