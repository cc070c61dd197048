"""The measuring environment: torch present, a CUDA GPU visible, and what card, driver and torch it is.

Everything here imports torch inside the function, so `kvcalc verify` can say in one line what is missing
(exit 3, EnvironmentProblem) before anything heavy loads.
"""

from __future__ import annotations

import datetime
import subprocess
from typing import Any

from kvcalc.errors import EnvironmentProblem

INSTALL_HINT = "pip install torch (or, in a kvcalc checkout, pip install '.[bench]')"


def require_torch() -> Any:
    """The torch module, or EnvironmentProblem naming the extra to install."""
    try:
        import torch
    except ImportError:
        raise EnvironmentProblem(f"kvcalc verify measures with torch, which is not installed: {INSTALL_HINT}") from None
    return torch


def require_cuda() -> Any:
    """torch with a CUDA device visible, or EnvironmentProblem saying why not."""
    torch = require_torch()
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise EnvironmentProblem(
            f"kvcalc verify needs a CUDA GPU; torch {torch.__version__} ({build}) sees none"
        )
    return torch


def driver_version() -> str:
    """The NVIDIA driver version as nvidia-smi prints it, or "" where nvidia-smi is absent."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def card_info(device: int = 0) -> dict[str, Any]:
    """Card name, memory, SMs, L2, driver, torch and CUDA versions, and today's date (what the JSON and the
    calibration file record)."""
    import torch

    props = torch.cuda.get_device_properties(device)
    return {
        "name": props.name,
        "total_memory_bytes": int(props.total_memory),
        "sm_count": int(props.multi_processor_count),
        "l2_cache_bytes": int(getattr(props, "L2_cache_size", 0)),
        "capability": f"{props.major}.{props.minor}",
        "driver": driver_version(),
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda or "",
        "date": datetime.date.today().isoformat(),
    }


#: Device-name fragments -> hardware key, most specific first (names as the driver prints them:
#: "NVIDIA H100 80GB HBM3" is the SXM5 part, "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200").
_NAME_KEYS: tuple[tuple[tuple[str, ...], str | None], ...] = (  # None: a known card no shipped file describes
    (("h100", "nvl"), "h100-nvl"),
    (("h100", "pcie"), "h100-pcie"),
    (("h100",), "h100-sxm"),
    (("gh200",), None),  # Grace Hopper: its own memory and bandwidth
    (("h200", "nvl"), None),  # PCIe, 600 W: not the SXM's hardware/h200.yaml
    (("h200",), "h200"),
    (("h20",), "h20"),
    (("gb200",), "gb200"),
    (("b200",), "b200"),
    (("b300",), "b300"),
    (("a100", "pcie", "80"), "a100-pcie-80gb"),
    (("a100", "80"), "a100-80gb"),
    (("a100",), "a100-40gb"),
    (("l40s",), "l40s"),
    (("l40",), "l40"),
    (("l4",), "l4"),
    (("a10g",), "a10g"),
    (("a10",), "a10"),
    (("rtx 6000 ada",), "rtx-6000-ada"),
    (("rtx pro 6000",), "rtx-pro-6000"),
    (("5090",), "rtx-5090"),
    (("4090",), "rtx-4090"),
    (("3090",), "rtx-3090"),
    (("t4",), "t4"),
    (("v100", "16gb"), None),  # hardware/v100-sxm2-32gb.yaml has twice its memory
    (("v100",), "v100-sxm2-32gb"),
)


def hardware_key_for(device_name: str) -> str | None:
    """The `hardware/<key>.yaml` stem for a CUDA device name, or None when no shipped file matches."""
    name = device_name.lower()
    for fragments, key in _NAME_KEYS:
        if all(fragment in name for fragment in fragments):
            return key
    return None
