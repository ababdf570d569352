"""One place that turns (global seed, benchmark, method, variant, replicate) into seeds and sets them.

Run seeds differ per variant so that variants are independent draws; data seeds ignore the method and
variant so that every method of a replicate sees exactly the same data split.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any sequence of parts (stable across Python processes and machines)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def run_seed(global_seed: int, benchmark: str, method: str, variant: str, replicate: int) -> int:
    return derive_seed("run", global_seed, benchmark, method, variant, replicate)


def data_seed(global_seed: int, benchmark: str, replicate: int) -> int:
    return derive_seed("data", global_seed, benchmark, replicate)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, torch and CUDA; ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic GEMMs (CUDA >= 10.2).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        deterministic_kernels()
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of inductor.

    The public call imports ``torch._inductor.config`` only to copy the flag there, for compiled code;
    that import cost ~1.3 s of every job's start (torch 2.13), about an eighth of the default run's CPU.
    Eager kernels read the C flag set here; ``inductor_follows_determinism`` copies it to inductor where
    a job compiles, and it is copied here too if inductor is already loaded.
    """
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    if "torch._inductor.config" in sys.modules:
        inductor_follows_determinism()


def inductor_follows_determinism() -> None:
    """Give torch.compile's inductor the deterministic-kernels setting (call before compiling)."""
    import torch._inductor.config as inductor_config

    inductor_config.deterministic = torch.are_deterministic_algorithms_enabled()


def numpy_rng(seed: int) -> np.random.Generator:
    """A local generator: data code never touches global random state."""
    return np.random.default_rng(seed)
