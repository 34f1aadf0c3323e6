"""reel.datatrove on Ray (datatrove's RayPipelineExecutor, a local ray.init): check ->
re-encode to AV1 over N small datasets. Ranks >= FAIL_AT raise in the first run (a gate file is
missing), so that run completes exactly the ranks below FAIL_AT; the rerun must run only the
others. Prints ray.init's time and each run's time. Run by scripts/test_fleet.sh."""

import os
import sys
import time
from pathlib import Path

import ray
from datatrove.executor import RayPipelineExecutor

import reel
from reel.datatrove import CheckStep, ReencodeStep

sys.path.insert(0, str(Path(__file__).parent))
import fleet_pipeline  # noqa: E402
from fleet_pipeline import Gate, completed, make_dataset, ran  # noqa: E402

TASKS, FAIL_AT = 4, 2
# The Gate step is fleet_pipeline's: Ray's workers get it by value, not by a module import.
ray.cloudpickle.register_pickle_by_value(fleet_pipeline)


def run(sources, work, run_id):
    t = time.monotonic()
    ex = RayPipelineExecutor([Gate(str(work / "marks"), run_id, FAIL_AT, wait=False), CheckStep(sources),
                              ReencodeStep(sources)], tasks=TASKS, workers=2, cpus_per_task=1,
                             mem_per_cpu_gb=0.5, logging_dir=str(work / "logs"))
    try:
        ex.run()
    except Exception as e:  # the first run's failing ranks may surface here
        print(f"{run_id} run raised: {type(e).__name__}: {str(e)[:200]}")
    print(f"{run_id} run: ran ranks {ran(work, run_id)}, completed {completed(work)}, "
          f"{time.monotonic() - t:.1f} s", flush=True)


def main():
    work, n = Path(sys.argv[1]), int(sys.argv[2])
    (work / "marks").mkdir(parents=True)
    sources = [make_dataset(work / "sources" / f"rec_{i:02d}", i) for i in range(n)]
    t = time.monotonic()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    print(f"ray.init: {time.monotonic() - t:.1f} s", flush=True)
    run(sources, work, "first")
    if completed(work) != list(range(FAIL_AT)):
        sys.exit(f"FAIL: the first run completed {completed(work)}, expected ranks < {FAIL_AT}")
    (work / "marks" / "open").touch()
    run(sources, work, "second")
    if ran(work, "second") != list(range(FAIL_AT, TASKS)) or completed(work) != list(range(TASKS)):
        sys.exit(f"FAIL: the rerun ran {ran(work, 'second')}, completed {completed(work)}")
    for s in sources:
        if not reel.check(s, decode=True)["ok"]:
            sys.exit(f"FAIL: {s} does not check")
    ray.shutdown()
    print(f"PASS: Ray: {n} datasets checked and re-encoded; the rerun ran only ranks "
          f"{list(range(FAIL_AT, TASKS))}", flush=True)


if __name__ == "__main__":
    main()
