"""The fleet pipeline of scripts/test_fleet.sh on datatrove's SlurmPipelineExecutor (a local
one-node Slurm cluster): check -> re-encode to AV1 over N small datasets, killed mid-way
(scancel) and rerun; prints which ranks each run ran and each run's time, and fails when the
rerun ran a completed rank or left one incomplete. Then the sharded merge: MergeStep on TASKS
ranks (each merges its slice into a part) and FinalMergeStep as a one-task job that depends on
them (Slurm's afterok), into one AV1 dataset that must pass lerobot_check.py --strict.
Ranks >= KILL_AT wait at a gate file that the first run never creates, so the first run
deterministically completes exactly the ranks below KILL_AT before it is cancelled."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from datatrove.executor import SlurmPipelineExecutor
from datatrove.pipeline.base import PipelineStep

import reel
from reel.datatrove import CheckStep, FinalMergeStep, MergeStep, ReencodeStep

TASKS, KILL_AT = 8, 4


class Gate(PipelineStep):
    """Marks each rank that ran (FOLDER/RUN_ID-rank-N); ranks >= ``at`` stop at the gate until
    FOLDER/open exists: they wait there (``wait=True``: Slurm's run is cancelled meanwhile) or
    raise (``wait=False``: the first Ray run fails those ranks). Shared with fleet_ray.py."""

    name = "gate"

    def __init__(self, folder, run_id, at, wait=True):
        super().__init__()
        self.folder, self.run_id, self.at, self.wait = folder, run_id, at, wait

    def run(self, data=None, rank=0, world_size=1):
        # The job unpickles this class without this script's globals: import here.
        import time
        from pathlib import Path

        Path(self.folder, f"{self.run_id}-rank-{rank}").touch()
        while rank >= self.at and not Path(self.folder, "open").exists():
            if not self.wait:
                raise RuntimeError(f"rank {rank}: gate closed (the first run fails here on purpose)")
            time.sleep(0.2)
        return data


def make_dataset(root: Path, seed: int, frames: int = 8, size: int = 64) -> str:
    names = [f"j{i}.pos" for i in range(6)]
    feats = {"action": {"dtype": "float32", "shape": (6,), "names": names},
             "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
             "observation.images.front": {"dtype": "video", "shape": (size, size, 3),
                                          "names": ["height", "width", "channels"]}}
    w = reel.Writer.create(root, 30, feats, robot_type="sim", vcodec="libx264", durable=False)
    ys, xs = np.mgrid[0:size, 0:size]
    for k in range(frames):
        img = np.full((size, size, 3), 128, np.uint8)
        img[..., 0] = (xs * (256 // size) + 7 * (seed + k)) % 256
        img[..., 1] = (ys * (256 // size) + 3 * (seed + k)) % 256
        w.add_frame({"action": np.full(6, seed, np.float32),
                     "observation.state": np.arange(6, dtype=np.float32) + k,
                     "observation.images.front": img, "task": f"task {seed % 3}"})
    w.save_episode()
    w.finalize()
    return str(root)


def executor(sources, work: Path, run_id: str, env_command: str):
    return SlurmPipelineExecutor(
        [Gate(str(work / "marks"), run_id, KILL_AT), CheckStep(sources), ReencodeStep(sources)],
        tasks=TASKS, time="00:30:00", partition="debug", cpus_per_task=1, mem_per_cpu_gb=1,
        job_name=f"reel-{run_id}", env_command=env_command, logging_dir=str(work / "logs"),
        slurm_logs_folder=str(work / "slurm_logs"), mail_type="NONE", requeue=False)


def completed(work: Path) -> list[int]:
    d = work / "logs" / "completions"
    return sorted(int(p) for p in os.listdir(d)) if d.is_dir() else []


def ran(work: Path, run_id: str) -> list[int]:
    return sorted(int(p.name.rsplit("-", 1)[1]) for p in (work / "marks").glob(f"{run_id}-rank-*"))


def wait(cond, what: str, limit_s: float = 900):
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"FAIL: timed out waiting for {what}")
        time.sleep(0.5)


def main():
    work, n, env_command = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    (work / "marks").mkdir(parents=True)
    t0 = time.monotonic()
    sources = [make_dataset(work / "sources" / f"rec_{i:02d}", i) for i in range(n)]
    print(f"made {n} datasets in {time.monotonic() - t0:.1f} s", flush=True)

    t1 = time.monotonic()
    executor(sources, work, "first", env_command).run()
    wait(lambda: completed(work) == list(range(KILL_AT)) and len(ran(work, "first")) > KILL_AT,
         "the first run to reach the gate")
    subprocess.run(["scancel", "--name", "reel-first"], check=True)
    wait(lambda: subprocess.run(["squeue", "-h", "-n", "reel-first"], capture_output=True,
                                text=True).stdout.strip() == "", "the cancelled jobs to leave")
    first = completed(work)
    print(f"first run (cancelled): ran ranks {ran(work, 'first')}, completed {first}, "
          f"{time.monotonic() - t1:.1f} s", flush=True)

    (work / "marks" / "open").touch()
    t2 = time.monotonic()
    executor(sources, work, "second", env_command).run()
    wait(lambda: completed(work) == list(range(TASKS)), "the second run to complete every rank")
    second = ran(work, "second")
    print(f"second run: ran ranks {second}, {time.monotonic() - t2:.1f} s", flush=True)
    if second != [r for r in range(TASKS) if r not in first]:
        sys.exit(f"FAIL: the rerun ran {second}, expected only the ranks not completed before")
    for s in sources:
        r = reel.check(s, decode=True)
        codecs = {f["info"]["video.codec"] for f in json.loads((Path(s) / "meta" / "info.json")
                  .read_text())["features"].values() if f["dtype"] == "video"}
        if not r["ok"] or codecs != {"av1"}:
            sys.exit(f"FAIL: {s}: ok={r['ok']} codecs={codecs} {r['problems']}")
    conf = Path(os.environ.get("REEL_CONFORMANCE_DIR", Path(__file__).resolve().parents[2] / "shared"
                               / "conformance")) / "lerobot_check.py"
    for s in (sources[0], sources[-1]):
        out = subprocess.run([sys.executable, str(conf), s, "--strict", "--color", "never"],
                             capture_output=True, text=True)
        if out.returncode != 0 or "RESULT: PASS" not in out.stdout:
            sys.exit(f"FAIL: lerobot_check.py --strict {s}:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    t3 = time.monotonic()
    opts = dict(time="00:30:00", partition="debug", cpus_per_task=1, mem_per_cpu_gb=1,
                env_command=env_command, mail_type="NONE", requeue=False)
    parts_ex = SlurmPipelineExecutor([MergeStep(sources, str(work / "parts"))], tasks=TASKS,
                                     job_name="reel-merge-parts", logging_dir=str(work / "logs_merge"),
                                     slurm_logs_folder=str(work / "slurm_logs_merge"), **opts)
    merged = work / "merged"
    final_ex = SlurmPipelineExecutor([FinalMergeStep(str(work / "parts"), str(merged))], tasks=1,
                                     job_name="reel-merge-final", depends=parts_ex,
                                     logging_dir=str(work / "logs_final"),
                                     slurm_logs_folder=str(work / "slurm_logs_final"), **opts)
    final_ex.run()
    wait(lambda: (work / "parts" / "final.json").exists(), "the final merge")
    mi = json.loads((merged / "meta" / "info.json").read_text())
    mcodecs = {f["info"]["video.codec"] for f in mi["features"].values() if f["dtype"] == "video"}
    if mi["total_episodes"] != n or mcodecs != {"av1"}:
        sys.exit(f"FAIL: merged has {mi['total_episodes']} episodes (want {n}), codecs {mcodecs}")
    out = subprocess.run([sys.executable, str(conf), str(merged), "--strict", "--color", "never"],
                         capture_output=True, text=True)
    if out.returncode != 0 or "RESULT: PASS" not in out.stdout:
        sys.exit(f"FAIL: lerobot_check.py --strict {merged}:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    print(f"sharded merge on Slurm ({TASKS} part jobs + 1 final job): {n} datasets -> {merged}, "
          f"{mi['total_frames']} frames, AV1, lerobot_check --strict PASS, "
          f"{time.monotonic() - t3:.1f} s", flush=True)
    print(f"PASS: {n} datasets checked, re-encoded to AV1 and merged on Slurm; "
          f"total {time.monotonic() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
