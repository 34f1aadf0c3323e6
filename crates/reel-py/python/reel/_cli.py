"""``reel-lerobot-record``: LeRobot's ``lerobot-record`` with reel's engine, no flag needed.
Every option is LeRobot's (``reel-lerobot-record --help``)."""

import sys


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
