"""TTT — test-time training for in-context learners (arXiv 2503.11842).

Two tracks: the paper's theory (one-layer linear attention on in-context linear regression, one
rank-one gradient step at test time; ``theory.py``) and its TabPFN experiment (fine-tuning TabPFN on
the prompt's own rows through the real ``tabpfn`` package; ``tabular.py``).
"""

from methods.ttt.run import METHOD

__all__ = ["METHOD"]
