"""TLDR — token-efficient reasoning for small models (arXiv 2505.07961): temperature scaling of the
end-of-thinking token, s1 budget forcing as the baseline, and length-regularised multi-level GRPO."""

from methods.tldr.run import METHOD

__all__ = ["METHOD"]
