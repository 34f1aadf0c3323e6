"""reel's per-episode figures of a dataset: loop timing, frame ages, encoder figures.

reel keeps them beside LeRobot's tables, in ``meta/reel/episodes.jsonl`` (LeRobot's loader,
resume and merge never open it): one JSON object per line, ``{"episode_index": 3, "figures":
{...}}``, later lines overriding the figures they name (an ``.../encoder`` correction after a
conversion to the final codec). Keys are those ``reel report`` draws, e.g. ``missed_deadlines``,
``late_start_p99_ms``, ``section/record/p50_ms``, ``camera/front/age_p50_ms``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["episode_figures"]


def episode_figures(root: str | os.PathLike) -> dict[int, dict[str, object]]:
    """Every episode's figures, by episode index. A dataset without the file gives ``{}``;
    a torn last line (a crash mid-append) is ignored; any other malformed line raises
    ``ValueError`` naming the file and line."""
    path = Path(root) / "meta" / "reel" / "episodes.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    lines = text.split("\n")
    out: dict[int, dict[str, object]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            index = int(obj["episode_index"])
            figures = dict(obj["figures"])
        except (ValueError, KeyError, TypeError) as e:
            if n == len(lines) and not text.endswith("\n"):
                break  # the torn last line of an interrupted append
            raise ValueError(f"{path}:{n}: not a figures line ({e})") from None
        out.setdefault(index, {}).update(figures)
    return out
