"""Shared neural building blocks: a small causal LM whose sequence mixer is pluggable."""

from methods.nn.lm import LMConfig, TinyLM
from methods.nn.mixers import MIXERS, build_mixer

__all__ = ["LMConfig", "TinyLM", "MIXERS", "build_mixer"]
