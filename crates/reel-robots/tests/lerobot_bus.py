"""LeRobot 0.6.1's own robot classes driven against reel's bus simulator (the oracle of the
reel-robots conformance tests). Needs the LeRobot venv plus feetech-servo-sdk / dynamixel-sdk
(on PYTHONPATH, see scripts/test.sh).

    lerobot_bus.py JOB [JOB ...]   (one interpreter start for all: importing LeRobot takes seconds)
    JOB = calibrate TYPE PORT ID DIR SWEEP_S   run TYPE.calibrate() (no file yet), then 20 reads
        | read TYPE PORT ID DIR N              connect (must find the motors calibrated), N reads

Each job prints one JSON line per read: {"job": i, "raw": [...], "norm": [...]} (floats as repr,
exact), and {"job": i, "calibrated": bool, "file": path}.
"""

import builtins
import json
import sys
import time
from pathlib import Path


def make(kind, port, id_, cal_dir):
    if kind in ("so100_follower", "so101_follower"):
        from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig

        return SOFollower(SOFollowerRobotConfig(port=port, id=id_, calibration_dir=Path(cal_dir)))
    if kind in ("so100_leader", "so101_leader"):
        from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig

        return SOLeader(SOLeaderTeleopConfig(port=port, id=id_, calibration_dir=Path(cal_dir)))
    if kind == "koch_follower":
        from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig

        return KochFollower(KochFollowerConfig(port=port, id=id_, calibration_dir=Path(cal_dir)))
    if kind == "koch_leader":
        from lerobot.teleoperators.koch_leader import KochLeader, KochLeaderConfig

        return KochLeader(KochLeaderConfig(port=port, id=id_, calibration_dir=Path(cal_dir)))
    raise SystemExit(f"unknown type {kind}")


JOB = [0]


def emit(d):
    d["job"] = JOB[0]
    print(json.dumps(d), flush=True)


def reads(dev, n):
    for _ in range(n):
        raw = dev.bus.sync_read("Present_Position", normalize=False, num_retry=3)
        norm = dev.bus._normalize(dict((dev.bus.motors[m].id, v) for m, v in raw.items()))
        names = list(dev.bus.motors)
        emit(
            {
                "raw": [int(raw[m]) for m in names],
                "norm": [repr(float(norm[dev.bus.motors[m].id])) for m in names],
            }
        )
        time.sleep(0.01)


def job(cmd, kind, port, id_, cal_dir, arg):
    dev = make(kind, port, id_, cal_dir)
    if cmd == "calibrate":
        sweep = float(arg)
        t0 = [None]

        def fake_input(msg=""):
            print(msg, flush=True)
            return ""

        def fake_enter():
            if t0[0] is None:
                t0[0] = time.time()
            return time.time() - t0[0] >= sweep

        import lerobot.motors.motors_bus as mb

        builtins.input = fake_input
        mb.enter_pressed = fake_enter
        mb.move_cursor_up = lambda n: None
        dev.bus.connect()
        dev.calibrate()
        reads(dev, 20)
    else:

        def no_input(msg=""):
            raise SystemExit(f"LeRobot asked for input (not calibrated?): {msg}")

        builtins.input = no_input
        dev.bus.connect()
        ok = dev.bus.is_calibrated
        emit({"calibrated": ok, "file": str(dev.calibration_fpath)})
        if not ok:
            raise SystemExit("LeRobot finds the motors not calibrated with its file")
        reads(dev, int(arg))
    emit({"calibrated": dev.bus.is_calibrated, "file": str(dev.calibration_fpath)})
    dev.bus.port_handler.closePort()


def main():
    args = sys.argv[1:]
    if not args or len(args) % 6:
        raise SystemExit(__doc__)
    for i in range(0, len(args), 6):
        JOB[0] = i // 6
        job(*args[i : i + 6])


if __name__ == "__main__":
    main()
