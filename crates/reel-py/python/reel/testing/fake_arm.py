"""What the fake robots and the fake teleoperator of :mod:`reel.testing` share: the SO-101's
joints, no calibration, and an arm that follows the actions it is sent. Mixed in before
LeRobot's ``Robot``/``Teleoperator`` base (``class ReelFakeRobot(FakeArm, Robot)``), so that
these methods fill LeRobot's abstract ones."""

from __future__ import annotations

from functools import cached_property

import numpy as np

#: The SO-101's joints, as LeRobot names them.
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def joint_features() -> dict:
    """``{"shoulder_pan.pos": float, ...}``: the joints as LeRobot's feature dicts give them."""
    return {f"{j}.pos": float for j in JOINTS}


class FakeDevice:
    """A device that keeps its config, needs no calibration or configuration, and moves the
    joints (its actions); ``_connected`` starts False."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.config = config
        self._connected = False

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    @cached_property
    def action_features(self) -> dict:
        return joint_features()


class FakeArm(FakeDevice):
    """A 6-joint arm whose state is the last action it was sent (``_joint_observation`` gives
    the joints' part of an observation)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self._state = np.zeros(len(JOINTS), np.float32)

    def _joint_observation(self) -> dict:
        return {f"{j}.pos": float(v) for j, v in zip(JOINTS, self._state)}

    def send_action(self, action: dict) -> dict:
        for i, j in enumerate(JOINTS):
            if f"{j}.pos" in action:
                self._state[i] = float(action[f"{j}.pos"])
        return action
