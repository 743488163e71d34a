"""Rewards and trainer wiring. Imports ``robustgen.schemas`` only: no OpenCV, no Ray on a training box.

The trainers themselves (``robustgen.train.trainer``) need the ``train`` extra (torch, transformers, trl).
"""

from robustgen.train.rewards import accuracy_reward, format_reward, r_deg, r_len, trl_reward_funcs

__all__ = ["accuracy_reward", "format_reward", "r_deg", "r_len", "trl_reward_funcs"]
