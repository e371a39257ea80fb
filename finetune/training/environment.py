"""`finetune env`: what a bug report or a run plan needs to know about this machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> list[tuple[str, str]]:
    import torch

    from finetune.hub import hub_is_reachable
    from finetune.outputs.files import library_versions

    rows = [("platform", platform.platform()), *library_versions().items()]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            rows.append((f"cuda:{index}", f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB"))
        rows.append(("bf16 on GPU", str(torch.cuda.is_bf16_supported())))
        rows.append(("fp16 on GPU", "True"))
    else:
        rows.append(("GPUs", "none (training runs on the CPU; --mixed-precision bf16 works there)"))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        rows.append(("mps", "available"))
    rows.append(("CPU threads", str(torch.get_num_threads())))
    rows.append(("accelerate config", _accelerate_config()))
    for name in ("HF_HUB_OFFLINE", "HF_HOME", "HF_ENDPOINT", "CUDA_VISIBLE_DEVICES", "WORLD_SIZE"):
        if name in os.environ:
            rows.append((name, os.environ[name]))
    rows.append(("Hugging Face Hub", "reachable" if hub_is_reachable() else "not reachable (offline mode applies)"))
    return rows


def _accelerate_config() -> str:
    from finetune.compat import accelerate_default_config_file

    path = Path(os.environ.get("ACCELERATE_CONFIG_FILE", accelerate_default_config_file()))
    if not path.is_file():
        return "none (defaults; `finetune ... --num-processes N` needs no config)"
    return f"{path}: " + " ".join(line.strip() for line in path.read_text().splitlines() if line.strip())[:300]
