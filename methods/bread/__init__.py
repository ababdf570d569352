"""BREAD — Branched Rollouts from Expert Anchors (arXiv 2506.17211) against SFT, GRPO and SFT+GRPO.

The RL engine is shared (``methods/rl``); this folder adds the branched-rollout search
(``branching.py``) and the experiment (``run.py``).
"""

from methods.bread.run import METHOD

__all__ = ["METHOD"]
