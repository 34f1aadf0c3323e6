#!/usr/bin/env bash
# reel.datatrove on a real Slurm cluster: installs Debian 12's slurm-wlm and munge (apt, as
# root, once), starts munged + slurmctld + slurmd on localhost with a minimal slurm.conf in a
# temporary folder, runs scripts/fleet_pipeline.py through datatrove's SlurmPipelineExecutor
# (check -> re-encode to AV1 over $REEL_FLEET_DATASETS small datasets, cancelled mid-way and
# rerun: the rerun must run only the ranks without a completion marker; then the sharded merge,
# MergeStep ranks + a FinalMergeStep job depending on them, into one AV1 dataset checked with
# lerobot_check.py --strict), then stops every
# daemon it started; then the same on Ray (scripts/fleet_ray.py, a local ray.init). Separate
# from test.sh: it needs root, system daemons, apt and a 260 MB Ray install
# (REEL_FLEET_SKIP_RAY=1 runs the Slurm part only).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/py_env.sh
reel_py_extras
reel_py_stage
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge
fi
WORK=$(mktemp -d /tmp/reel-fleet.XXXXXX)
mkdir -p "$WORK/slurm/state" "$WORK/slurm/spool" "$WORK/munge"
export SLURM_CONF="$WORK/slurm/slurm.conf"
NODE=$(hostname -s)
cat > "$SLURM_CONF" <<CONF
ClusterName=reelfleet
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$WORK/slurm/state
SlurmdSpoolDir=$WORK/slurm/spool
SlurmctldPidFile=$WORK/slurm/slurmctld.pid
SlurmdPidFile=$WORK/slurm/slurmd.pid
SlurmctldPort=16817
SlurmdPort=16818
SlurmctldLogFile=$WORK/slurm/slurmctld.log
SlurmdLogFile=$WORK/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
stop() {
  local pids=() p
  for f in "$WORK/slurm/slurmd.pid" "$WORK/slurm/slurmctld.pid" "$WORK/munge/munged.pid"; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # slurmctld saves its state before it exits: wait for each daemon (up to 20 s).
  for p in "${pids[@]}"; do
    for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  done
}
trap stop EXIT
started=$(date +%s)
munged --force -S "$WORK/munge/munge.socket" --pid-file "$WORK/munge/munged.pid" \
  --log-file "$WORK/munge/munged.log" --seed-file "$WORK/munge/munge.seed"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE "^idle" && break
  sleep 1
done
sinfo
echo "cluster up in $(( $(date +%s) - started )) s (config $SLURM_CONF)"
# datatrove's jobs run `srun launch_pickled_pipeline FILE` (its console script, which
# `pip --target` does not put on a PATH): a shim runs the module with the venv's python.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec %s -m datatrove.tools.launch_pickled_pipeline "$@"\n' "$REEL_PY" \
  > "$WORK/bin/launch_pickled_pipeline"
chmod +x "$WORK/bin/launch_pickled_pipeline"
ENVCMD="export PATH=$WORK/bin:$(dirname "$REEL_PY"):\$PATH PYTHONPATH=$REEL_PY_STAGE:$REEL_PY_EXTRAS SVT_LOG=1 REEL_LOG=warn HF_HUB_OFFLINE=1"
started=$(date +%s)
REEL_LOG=warn PYTHONPATH="$REEL_PY_STAGE:$REEL_PY_EXTRAS" "$REEL_PY" scripts/fleet_pipeline.py \
  "$WORK/run" "${REEL_FLEET_DATASETS:-20}" "$ENVCMD"
echo "== Slurm: passed in $(( $(date +%s) - started )) s =="

if [ "${REEL_FLEET_SKIP_RAY:-0}" = 1 ]; then
  echo "== Ray: skipped (REEL_FLEET_SKIP_RAY=1) =="
  exit 0
fi
# Ray 2.60.0 (datatrove's RayPipelineExecutor, a local ray.init): installed with its
# dependencies beside the venv in $REEL_RAY_EXTRAS (~260 MB; the venv's own packaging stays).
REEL_RAY_EXTRAS="${REEL_RAY_EXTRAS:-${LEROBOT_VENV}-ray-extras}"
if ! PYTHONPATH="$REEL_RAY_EXTRAS" "$REEL_PY" -c "import ray" 2>/dev/null; then
  echo "installing ray 2.60.0 into $REEL_RAY_EXTRAS"
  "$REEL_PY" -m pip install -q --target "$REEL_RAY_EXTRAS" "ray==2.60.0"
  rm -rf "$REEL_RAY_EXTRAS"/packaging "$REEL_RAY_EXTRAS"/packaging-*.dist-info
fi
started=$(date +%s)
REEL_LOG=warn PYTHONPATH="$REEL_PY_STAGE:$REEL_PY_EXTRAS:$REEL_RAY_EXTRAS" "$REEL_PY" \
  scripts/fleet_ray.py "$WORK/ray" "${REEL_FLEET_RAY_DATASETS:-8}"
echo "== Ray: passed in $(( $(date +%s) - started )) s =="
echo "== test_fleet.sh: passed (work in $WORK) =="
