"""``REEL_KEYS``: the recording keys (→ next, ← re-record, Esc stop) pressed on a schedule, for
runs of LeRobot's loops without a keyboard. ``REEL_KEYS="1.0:rerecord,5:stop"`` presses ← 1 s and
Esc 5 s after LeRobot starts listening."""

from __future__ import annotations

import os
import sys
import threading

_CONTROLS = {"next": "right", "right": "right", "rerecord": "left", "left": "left",
             "stop": "esc", "esc": "esc"}

#: Modules that bind ``init_keyboard_listener`` at import.
TARGETS = ("lerobot.scripts.lerobot_record", "lerobot.rollout.strategies.episodic")


def parse_keys(spec: str) -> list[tuple[float, str]]:
    """``"1.0:rerecord,5:stop"`` → ``[(1.0, "left"), (5.0, "esc")]``; ValueError naming a bad item."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        t, sep, key = item.partition(":")
        try:
            at = float(t)
        except ValueError:
            at = -1.0
        if not sep or at < 0 or key.strip().lower() not in _CONTROLS:
            raise ValueError(
                f"REEL_KEYS item {item!r}: expected SECONDS:KEY with KEY one of {sorted(_CONTROLS)}")
        out.append((at, _CONTROLS[key.strip().lower()]))
    return sorted(out)


class _ScriptedListener:
    def __init__(self, timers: list[threading.Timer], inner):
        self._timers = timers
        self._inner = inner

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        if self._inner is not None:
            self._inner.stop()


def install_scripted_keys() -> bool:
    """With ``REEL_KEYS`` set, wraps LeRobot's ``init_keyboard_listener`` so that the keys are
    pressed on schedule. Returns whether it did."""
    spec = os.environ.get("REEL_KEYS")
    if not spec:
        return False
    schedule = parse_keys(spec)
    import importlib

    from lerobot.utils import keyboard_input

    original = keyboard_input.init_keyboard_listener

    def init_keyboard_listener():
        inner, events = original()
        timers = []
        for at, control in schedule:
            t = threading.Timer(at, keyboard_input.apply_recording_control, (control, events))
            t.daemon = True
            t.start()
            timers.append(t)
        return _ScriptedListener(timers, inner), events

    for name in TARGETS:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        mod.init_keyboard_listener = init_keyboard_listener
    print(f"reel.testing: scripted keys {schedule}", file=sys.stderr, flush=True)
    return True
