"""Device and precision choice, made once per job."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device 'cuda' but torch sees no GPU; use device: auto or cpu")
    return torch.device(name)


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision where asked (bf16 on GPU); a no-op context in float32."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)
