"""Run the ServerApp and ClientApps in Flower's simulation runtime (Ray), with short, owned paths.

Ray keeps its sockets under its temporary directory, and Unix socket paths are limited to 107 bytes,
so the directory is a short one under ``results/cache/ray/`` (or under the system temp directory when
even that is too long). Telemetry and usage statistics are switched off: runs are offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from methods.core.config import CACHE_ROOT

MAX_RAY_TMP_CHARS = 44  # Ray appends ~63 characters (/session_<time>_<pid>/sockets/plasma_store) of 107


def ray_temp_dir(key: str) -> Path:
    preferred = (Path(CACHE_ROOT) / "ray" / hashlib.sha256(key.encode()).hexdigest()[:6]).resolve()
    if len(str(preferred)) <= MAX_RAY_TMP_CHARS:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="obray"))


def descendants_cpu_seconds() -> float:
    """CPU seconds of every live process below this one (Ray's raylet, GCS and client actors)."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def simulate(server_main: Callable, client_app, num_clients: int, key: str, threads: int = 1,
             gpus_per_client: float = 0.0, log: Callable[[str], None] = print) -> float:
    """Run one simulation; ``server_main(grid)`` is the ServerApp's work. Returns the CPU seconds of
    Ray's processes, measured just before the ServerApp returns."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    ray_cpu = {"seconds": 0.0}
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        server_main(grid)
        ray_cpu["seconds"] = descendants_cpu_seconds()

    tmp = ray_temp_dir(key)
    log(f"flower simulation: {num_clients} clients, ray temp dir {tmp}")
    backend = {"client_resources": {"num_cpus": threads, "num_gpus": gpus_per_client},
               "init_args": {"num_cpus": threads, "num_gpus": 1 if gpus_per_client else 0,
                             "_temp_dir": str(tmp), "include_dashboard": False,
                             "object_store_memory": 100 * 2**20}}
    try:
        run_simulation(server_app=app, client_app=client_app, num_supernodes=num_clients,
                       backend_config=backend)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ray_cpu["seconds"]
