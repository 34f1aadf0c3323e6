"""Test helper for LeRobot runs (not shipped): a Hugging Face Hub that never leaves the machine.

Loaded with ``--hub.discover_packages_path=reel_test_hub``. Every upload copies the uploaded
files into ``$REEL_FAKE_HUB/upload-N`` (after ``REEL_FAKE_HUB_DELAY_S`` seconds, a slow link);
repo, branch, tag and card calls do nothing. ``REEL_TEST_SENTRY_EPISODE_S`` shortens sentry's
episodes (LeRobot sizes them to fill a video file of at least 1 MB: minutes at test sizes).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import threading
import time
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi
from huggingface_hub.repocard import RepoCard

_lock = threading.Lock()
_count = [0]


def _upload_folder(self, *, folder_path, allow_patterns=None, ignore_patterns=None, **kw):
    out_root = Path(os.environ["REEL_FAKE_HUB"])
    with _lock:
        _count[0] += 1
        n = _count[0]
    started = time.time()
    time.sleep(float(os.environ.get("REEL_FAKE_HUB_DELAY_S", "0")))
    allow = [allow_patterns] if isinstance(allow_patterns, str) else (allow_patterns or ["*"])
    ignore = [ignore_patterns] if isinstance(ignore_patterns, str) else (ignore_patterns or [])
    dst = out_root / f"upload-{n}"
    src = Path(folder_path)
    files = []
    for p in sorted(src.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(src).as_posix()
        if not any(fnmatch.fnmatch(rel, a) for a in allow):
            continue
        if any(fnmatch.fnmatch(rel, i) or rel.startswith(i.rstrip("*")) for i in ignore):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst / rel)
        files.append(rel)
    (out_root / f"upload-{n}.json").write_text(json.dumps(
        {"files": files, "started": started, "ended": time.time()}))
    return None


def _noop(*a, **k):
    return None


HfApi.upload_folder = _upload_folder
HfApi.upload_large_folder = _upload_folder
HfApi.create_repo = _noop
HfApi.create_branch = _noop
HfApi.create_tag = _noop
HfApi.delete_tag = _noop
RepoCard.push_to_hub = _noop
huggingface_hub.HfApi = HfApi

if os.environ.get("REEL_TEST_SENTRY_EPISODE_S"):
    import lerobot.rollout.strategies.sentry as sentry

    seconds = float(os.environ["REEL_TEST_SENTRY_EPISODE_S"])
    sentry.estimate_max_episode_seconds = lambda *a, **k: seconds
