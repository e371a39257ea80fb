"""Several processes, through Accelerate's own launcher (never one of ours).

`finetune classify ... --num-processes 2` re-runs the same command under `accelerate launch`. Each child sees
WORLD_SIZE/RANK and trains its shard; the Trainer does the data parallelism. On a machine without GPUs,
`accelerate launch --cpu` starts a single process, so CPU runs take Accelerate's multi-GPU path (torch elastic,
gloo backend) and the Trainer is told to stay on the CPU: N processes mean N processes there too.
`accelerate launch -m finetune ...` and `torchrun -m finetune ...` work the same, since the children only read the
environment those launchers set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from finetune.compat import ACCELERATE_LAUNCH_MODULE
from finetune.errors import UserError

# Flags the parent consumes; the children must not see them, or they would launch again.
LAUNCH_FLAGS = ("--num-processes", "--num-machines", "--machine-rank", "--main-process-ip", "--main-process-port")


@dataclass
class LaunchConfig:
    num_processes: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None

    @property
    def wanted(self) -> bool:
        return self.num_processes > 1 or self.num_machines > 1


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def inside_launcher() -> bool:
    return "LOCAL_RANK" in os.environ or world_size() > 1


def barrier() -> None:
    """Wait until every process gets here (no-op in a single process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=not _has_cuda()).wait_for_everyone()


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def strip_launch_flags(argv: list[str]) -> list[str]:
    """argv without the launch flags and their values (both `--flag value` and `--flag=value`)."""
    kept: list[str] = []
    skip_next = False
    for argument in argv:
        if skip_next:
            skip_next = False
            continue
        name = argument.split("=", 1)[0]
        if name in LAUNCH_FLAGS:
            skip_next = "=" not in argument
            continue
        kept.append(argument)
    return kept


def user_accelerate_config() -> Path | None:
    """The user's own `accelerate config` file (ACCELERATE_CONFIG_FILE, else accelerate's default location), when
    there is one."""
    from finetune.compat import accelerate_default_config_file

    path = Path(os.environ.get("ACCELERATE_CONFIG_FILE") or accelerate_default_config_file())
    return path if path.is_file() else None


def launch_command(config: LaunchConfig, argv: list[str], user_config: Path | None = None) -> list[str]:
    """The `accelerate launch` command line that runs `finetune <argv>` in every process.

    Without a `user_config`, every setting is explicit (multi-process data parallel; finetune's recipe decides
    precision and compilation). With one, the user's `accelerate config` decides (distributed type, precision,
    dynamo, ...): only what was given on finetune's command line is added."""
    if config.num_processes < 1 or config.num_machines < 1:
        raise UserError("--num-processes and --num-machines must be at least 1.")
    if config.num_machines > 1 and not config.main_process_ip:
        raise UserError("Several machines need --main-process-ip (the address of machine rank 0).")
    command = [sys.executable, "-m", ACCELERATE_LAUNCH_MODULE]
    if user_config is not None:
        command += ["--config_file", str(user_config), "--num_processes", str(config.num_processes)]
        if config.num_machines > 1:
            command += ["--num_machines", str(config.num_machines), "--machine_rank", str(config.machine_rank)]
        if config.main_process_ip:
            command += ["--main_process_ip", config.main_process_ip]
        if config.main_process_port is not None:
            command += ["--main_process_port", str(config.main_process_port)]
        return [*command, "-m", "finetune", *strip_launch_flags(argv)]
    command += ["--multi_gpu", "--num_processes", str(config.num_processes),
                "--num_machines", str(config.num_machines), "--machine_rank", str(config.machine_rank),
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    if config.main_process_ip:
        command += ["--main_process_ip", config.main_process_ip]
    command += ["--main_process_port", str(config.main_process_port if config.main_process_port is not None else 0)]
    return [*command, "-m", "finetune", *strip_launch_flags(argv)]


def relaunch(config: LaunchConfig) -> int:
    """Run this same command in `config.num_processes` processes; returns the launcher's exit code."""
    command = launch_command(config, sys.argv[1:], user_accelerate_config())
    return subprocess.call(command)
