"""CAT — convolution-augmented attention (arXiv 2407.05591) against plain attention.

Variant families: ``attention`` (softmax attention with RoPE) and ``cat`` (short causal convolutions
on Q, K and V, no positional encoding). Layer count and sizes are arguments, so "attention 1 layer",
"attention 2 layers" and "CAT 1 layer" are three variants of two families.
"""

from methods.cat.run import METHOD

__all__ = ["METHOD"]
