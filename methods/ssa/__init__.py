"""SSA — selective self-attention (arXiv 2411.12892) against vanilla softmax attention.

Variant families: ``attention`` (the baseline) and ``ssa`` (query, position and value temperatures,
each switchable for the paper's ablation). ``methods/ssa/hf_patch.py`` puts the same temperatures into
a pretrained Hugging Face causal LM (GPT-2, Llama / Qwen2 families) for fine-tuning.
"""

from methods.ssa.run import METHOD

__all__ = ["METHOD"]
