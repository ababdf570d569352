"""What a result needs to be trusted later: code version, packages, device, timing, memory."""

from __future__ import annotations

import importlib.metadata
import platform
import resource
import subprocess
import sys
from typing import Any

import torch

PACKAGES = ("torch", "numpy", "pandas", "transformers", "peft", "trl", "tabpfn", "flwr", "snakemake", "vllm")


def git_sha() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cudnn"] = torch.backends.cudnn.version()
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def resource_usage(device: torch.device) -> dict[str, float]:
    """Peak memory (MB) and CPU seconds; CPU time stays meaningful when jobs share cores.

    ``cpu_seconds`` counts this process and its finished child processes (e.g. a Flower/Ray simulation's
    workers once shut down), so a job that fans out is not under-counted; ``cpu_seconds_children`` says
    how much of it the children used.
    """
    # ru_maxrss is in kilobytes on Linux.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = children.ru_utime + children.ru_stime
    out = {"peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime + child_cpu,
           "cpu_seconds_children": child_cpu}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out
