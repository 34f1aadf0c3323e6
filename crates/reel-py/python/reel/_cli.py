"""The command lines a wheel installs.

* ``reel``: reel's own command line (``reel record --sim``, ``reel check``, ...). The wheel built
  by ``scripts/build_wheel.sh`` carries the compiled binary at ``reel/_bin/reel`` (its shared
  libraries beside it, in ``reel.libs``); this launcher replaces the Python process with it.
* ``reel-lerobot-record``: LeRobot's ``lerobot-record`` with reel's engine, no flag needed.
  Every option is LeRobot's (``reel-lerobot-record --help``).
* ``reel-lerobot-rollout``: the same for ``lerobot-rollout``.
"""

import os
import sys


def binary_path() -> str:
    """Where the bundled ``reel`` binary is (it exists only in a wheel from build_wheel.sh)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "reel")


def main() -> None:
    exe = binary_path()
    if not os.path.isfile(exe):
        sys.exit("reel: this installation of the Python module has no bundled `reel` binary "
                 "(it was built from source, not from the wheel of scripts/build_wheel.sh); "
                 "build the command line with `cargo build --release -p reel`")
    if not os.access(exe, os.X_OK):
        os.chmod(exe, os.stat(exe).st_mode | 0o111)  # an unpacker that dropped the mode bits
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, ["reel", *sys.argv[1:]])


def record() -> None:
    from .lerobot import install

    install()
    from lerobot.scripts.lerobot_record import main

    sys.exit(main())


def rollout() -> None:
    from .lerobot import install

    install()
    from lerobot.scripts.lerobot_rollout import main

    sys.exit(main())


if __name__ == "__main__":
    record()
