"""Checks a dataset recorded from simulated arms against what the simulated servos said, in
LeRobot 0.6.1's own units (its bus's `_normalize` with the calibration files), and prints the
per-episode figures (meta/reel/episodes.jsonl). Needs the LeRobot venv (+ servo SDKs on PYTHONPATH).

    robots_check.py DATASET FOLLOWER_TYPE FOLLOWER_TRACE FOLLOWER_CAL LEADER_TYPE LEADER_TRACE LEADER_CAL

Prints one JSON object: rows, state/action rows matched in order to the traces' good reads,
rows that matched nothing (garbage), rows equal to the previous one, and the episodes' reel/*.
"""

import glob
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def bus_for(kind, cal_file):
    import draccus
    from lerobot.motors import MotorCalibration

    with open(cal_file) as f, draccus.config_type("json"):
        cal = draccus.load(dict[str, MotorCalibration], f)
    if kind.startswith("so10"):
        from lerobot.motors import Motor, MotorNormMode
        from lerobot.motors.feetech import FeetechMotorsBus as B

        models = ["sts3215"] * 6
    else:
        from lerobot.motors import Motor, MotorNormMode
        from lerobot.motors.dynamixel import DynamixelMotorsBus as B

        models = (
            ["xl330-m077"] * 6
            if kind == "koch_leader"
            else ["xl430-w250", "xl430-w250"] + ["xl330-m288"] * 4
        )
    degrees = kind.startswith("so10")
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    motors = {}
    for i, (n, m) in enumerate(zip(names, models)):
        mode = (
            MotorNormMode.RANGE_0_100
            if n == "gripper"
            else (MotorNormMode.DEGREES if degrees else MotorNormMode.RANGE_M100_100)
        )
        motors[n] = Motor(i + 1, m, mode)
    return B(port="/dev/null", motors=motors, calibration=cal), names


def trace_rows(bus, names, trace):
    good = []
    for line in open(trace):
        parts = line.split()
        if len(parts) != 8 or parts[0] != "P" or parts[1] != "ok":
            continue
        raw = {bus.motors[n].id: int(v) for n, v in zip(names, parts[2:])}
        norm = bus._normalize(raw)
        good.append(np.array([norm[bus.motors[n].id] for n in names], dtype=np.float32))
    return good


def match_in_order(rows, candidates):
    """Each row matches a good read at or after the previous match (equal float32s); a row equal
    to its predecessor is a stale tick (it may also match). Returns (matched, stale, garbage)."""
    j = 0
    matched = stale = garbage = 0
    prev = None
    for r in rows:
        k = j
        while k < len(candidates) and not np.array_equal(candidates[k], r):
            k += 1
        if k < len(candidates):
            matched += 1
            j = k
        elif prev is not None and np.array_equal(prev, r):
            stale += 1
        else:
            garbage += 1
        prev = r
    return matched, stale, garbage


def main():
    root, ftype, ftrace, fcal, ltype, ltrace, lcal = sys.argv[1:8]
    files = sorted(glob.glob(str(Path(root) / "data/chunk-*/file-*.parquet")))
    df = pd.concat([pd.read_parquet(f) for f in files])
    state = [np.asarray(v, dtype=np.float32) for v in df["observation.state"]]
    action = [np.asarray(v, dtype=np.float32) for v in df["action"]]
    fbus, names = bus_for(ftype, fcal)
    lbus, _ = bus_for(ltype, lcal)
    s = match_in_order(state, trace_rows(fbus, names, ftrace))
    a = match_in_order(action, trace_rows(lbus, names, ltrace))
    # reel's per-episode figures live in meta/reel/episodes.jsonl (later lines override).
    per_ep = {}
    with open(Path(root) / "meta/reel/episodes.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            per_ep.setdefault(rec["episode_index"], {}).update(rec["figures"])
    extras = {}
    for e in sorted(per_ep):
        for k, v in per_ep[e].items():
            extras.setdefault("reel/" + k, []).append(v)
    print(
        json.dumps(
            {
                "rows": len(state),
                "state": {"matched": s[0], "stale": s[1], "garbage": s[2]},
                "action": {"matched": a[0], "stale": a[1], "garbage": a[2]},
                "extras": extras,
            }
        )
    )


if __name__ == "__main__":
    main()
