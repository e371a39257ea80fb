"""TrainingArguments from a recipe: schedule, evaluation, precision and the distributed engines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from finetune.config.schema import DistributedSection, Recipe, TrainSection
from finetune.console import show_progress
from finetune.errors import UserError
from finetune.tasks.metrics import higher_is_better
from finetune.training.defaults import with_default_batch_and_epochs
from finetune.training.distributed import world_size


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


LOG_POINTS = 25  # training-loss points per run when the recipe sets no logging_steps

# report_to name -> (module to import, pip extra)
_TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


def check_trackers(report_to: list[str]) -> None:
    """Fail before training when a tracker's package is missing (transformers would fail after loading)."""
    import importlib.util

    for name in report_to:
        if name in ("none", "all"):
            continue
        if name not in _TRACKERS:
            continue  # transformers knows more (comet_ml, clearml, trackio, ...) and checks those itself
        module, extra = _TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"report_to: {name} needs the {module} package: pip install 'finetune[{extra}]' "
                            f"(or pip install {module}).")


def choose_precision(requested: str, on_gpu: bool, gpu_supports_bf16: bool, cpu_bf16: str | None = None) -> str:
    """The precision a run uses: as requested, and for 'auto' bf16 on a GPU that supports it, fp16 on other GPUs;
    on the CPU bf16 only where it has AMX-BF16 matrix units (`cpu_bf16 == "amx"`), else no (float32).

    CPUs with only the AVX512-BF16 instructions (`"avx512"`) stay in float32: there, bf16 autocast trained at 0.5-0.7x
    float32's speed at equal quality in every task family (benchmarks/RESULTS.md, "Mixed precision (CPU)"): its
    matrix products ran at the float32 rate, and autocast adds casts of weights and activations."""
    if requested != "auto":
        return requested
    if not on_gpu:
        return "bf16" if cpu_bf16 == "amx" else "no"
    return "bf16" if gpu_supports_bf16 else "fp16"


def cpu_bf16_support() -> str | None:
    """How this CPU multiplies bf16 matrices: "amx" (AMX-BF16 tiles: Xeon Sapphire Rapids and newer), "avx512"
    (AVX512-BF16 dot-product instructions only), or None. From torch's CPU capabilities, or /proc/cpuinfo's flags
    where torch is older than its `torch.cpu.get_capabilities`."""
    import torch

    try:
        capabilities = dict(torch.cpu.get_capabilities())
        flags = {name for name, present in capabilities.items() if present is True}
    except AttributeError:
        try:
            flags = {flag for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                     for flag in line.split(":", 1)[1].split()}
        except OSError:
            flags = set()
    if "amx_bf16" in flags:
        return "amx"
    return "avx512" if "avx512_bf16" in flags else None


def resolve_mixed_precision(requested: str, use_cpu: bool) -> str:
    """`choose_precision` on this machine."""
    if requested != "auto":
        return requested
    on_gpu = not use_cpu and has_cuda()
    if not on_gpu:
        return choose_precision(requested, False, False, cpu_bf16_support())
    import torch

    return choose_precision(requested, True, torch.cuda.is_bf16_supported())


def precision_options(precision: str) -> dict[str, bool]:
    """The Trainer's switches for a resolved precision (no, bf16 or fp16)."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def engine_options(distributed: DistributedSection, on_gpu: bool = True) -> dict[str, Any]:
    """DeepSpeed or FSDP settings in the form the Trainer takes them."""
    if distributed.fsdp and not on_gpu:
        # accelerate (1.15) turns FSDP on only for GPU-type launches; on CPUs it would silently train unsharded.
        raise UserError("distributed.fsdp needs GPUs: accelerate applies FSDP only to GPU processes, so on CPUs the "
                        "run would be plain data parallel without saying so. Remove distributed.fsdp (and "
                        "distributed.fsdp_wrap) for a CPU run; --num-processes N alone trains data parallel.")
    if distributed.deepspeed or distributed.zero_stage is not None:
        try:
            import deepspeed  # noqa: F401
        except ImportError as error:
            raise UserError("DeepSpeed is not installed: pip install deepspeed (it needs a CUDA toolkit), or "
                            "use distributed.fsdp, which ships with torch.") from error
        if distributed.deepspeed:
            path = Path(distributed.deepspeed)
            if not path.is_file():
                raise UserError(f"DeepSpeed config {path} not found.")
            return {"deepspeed": str(path)}
        return {"deepspeed": deepspeed_config(distributed.zero_stage or 0, distributed.offload)}
    if distributed.fsdp:
        return {"fsdp": True, "fsdp_config": fsdp_config(distributed.fsdp, distributed.fsdp_wrap)}
    return {}


# The recipe's FSDP words -> FSDP2's fsdp_config (transformers deprecates the `fsdp="full_shard ..."` string form).
_FSDP_WORDS = {"full_shard": {"reshard_after_forward": True}, "shard_grad_op": {"reshard_after_forward": False},
               "offload": {"cpu_offload": True}, "auto_wrap": {}}


def fsdp_config(mode: str, wrap: list[str] | None) -> dict[str, Any]:
    """`fsdp: full_shard auto_wrap` (the words transformers' scripts use) as FSDP2 settings: full_shard reshards
    parameters after the forward pass, shard_grad_op keeps them; offload puts them in CPU memory; auto_wrap wraps
    every layer (FSDP2's default policy), or the classes in `wrap`."""
    config: dict[str, Any] = {}
    for word in mode.split():
        if word not in _FSDP_WORDS:
            raise UserError(f"distributed.fsdp: '{word}' is not an FSDP2 mode; use full_shard or shard_grad_op, "
                            f"optionally with offload and auto_wrap.")
        config.update(_FSDP_WORDS[word])
    if wrap:
        config["transformer_layer_cls_to_wrap"] = list(wrap)
    return config


def deepspeed_config(stage: int, offload: bool) -> dict[str, Any]:
    """A ZeRO config whose sizes the Trainer fills in ("auto") from its own arguments."""
    zero: dict[str, Any] = {"stage": stage}
    if offload and stage >= 1:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if offload and stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {"zero_optimization": zero, "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}}


def speed_options(train: TrainSection, use_cpu: bool) -> dict[str, Any]:
    """Settings that speed training up at no cost in accuracy: on CUDA, the fused AdamW kernel, TF32 matrix
    products (Ampere and newer) and DataLoader workers that collate the next batches while the GPU computes;
    torch.compile when the recipe asks. On the CPU, collating in the main process is cheapest: workers would compete
    with the model for the same cores."""
    options: dict[str, Any] = {"torch_compile": train.torch_compile}
    if use_cpu or not has_cuda():
        return options
    import os

    import torch

    options["optim"] = "adamw_torch_fused"
    if torch.cuda.get_device_capability()[0] >= 8:
        options["tf32"] = True
    workers = min(4, (os.cpu_count() or 1) // max(1, torch.cuda.device_count()) // 2)
    if workers:
        # Tokenization ran threaded before the workers fork; without this, every worker warns about it.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        options.update(dataloader_num_workers=workers, dataloader_persistent_workers=True)
    return options


def total_steps(train: TrainSection, train_examples: int, processes: int = 1) -> int:
    """Optimizer steps the run will take, as the Trainer counts them."""
    if train.max_steps:
        return train.max_steps
    assert train.batch_size is not None and train.epochs is not None, "run() chooses the defaults before this"
    batches = math.ceil(train_examples / (train.batch_size * max(1, processes)))
    return math.ceil(math.ceil(batches / train.gradient_accumulation_steps) * train.epochs)


def logging_interval(train: TrainSection, train_examples: int | None, processes: int = 1) -> int:
    """The recipe's logging_steps, else about LOG_POINTS training-loss points per run: every step for short runs,
    so a 16-step run still shows a loss curve, and a long run's log stays readable."""
    if train.logging_steps is not None:
        return train.logging_steps
    if not train_examples:
        return 1
    return max(1, total_steps(train, train_examples, processes) // LOG_POINTS)


def build_training_arguments(recipe: Recipe, task: Any, run_dir: Path, eval_names: list[str],
                             train_examples: int | None = None) -> Any:
    train = with_default_batch_and_epochs(recipe, train_examples, world_size()).train  # run() has chosen them
    assert train.batch_size is not None
    # Without GPUs, say so explicitly when it matters: several processes (accelerate then uses gloo) and bf16
    # (the Trainer refuses bf16/fp16 on a machine without GPUs unless told to stay on the CPU).
    precision = resolve_mixed_precision(train.mixed_precision, train.use_cpu)
    use_cpu = train.use_cpu or (not has_cuda() and (world_size() > 1 or precision in ("bf16", "fp16")))
    evaluate = train.eval_strategy if eval_names else "no"
    best_metric = train.metric_for_best_model or task.main_metric
    if len(eval_names) > 1 and not train.metric_for_best_model:
        best_metric = f"{eval_names[0]}_{best_metric}"  # the Trainer prefixes each eval set's metrics by its name
    options: dict[str, Any] = dict(
        output_dir=str(run_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        # None only before the model is loaded (run() fills in the size-based default): the Trainer's own rate.
        learning_rate=train.learning_rate if train.learning_rate is not None else 5e-5,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size or 2 * train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        weight_decay=train.weight_decay,
        # A float below 1 is a ratio of the total steps in transformers 5; None before run() fills it in.
        warmup_steps=train.warmup_ratio or 0.0,
        lr_scheduler_type=train.lr_scheduler,
        seed=train.seed,
        data_seed=train.seed,
        eval_strategy=evaluate,
        eval_steps=train.eval_steps,
        save_strategy=evaluate if evaluate != "no" else "no",
        save_steps=train.eval_steps,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=evaluate != "no",
        metric_for_best_model=best_metric if evaluate != "no" else None,
        greater_is_better=None if evaluate == "no" else higher_is_better(best_metric),
        logging_steps=logging_interval(train, train_examples, world_size()),
        report_to=train.report_to or "none",
        disable_tqdm=not show_progress(),
        use_cpu=use_cpu,
        dataloader_pin_memory=not use_cpu and has_cuda(),  # pinning only helps host-to-GPU copies
        activation_checkpointing=train.gradient_checkpointing,
        # transformers 5 multiplies the loss by the process count when a model's forward takes loss kwargs,
        # assuming it divides by the global token count; sequence classifiers do not, so 2 processes reported
        # twice the loss. Averaging per device keeps 1- and N-process losses comparable for every task.
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,  # every parameter that trains is used; the search costs a graph pass
        auto_find_batch_size=train.auto_find_batch_size,
        **precision_options(precision),
        **engine_options(recipe.distributed, on_gpu=not recipe.train.use_cpu and has_cuda()),
        **speed_options(train, use_cpu),
        # Batches of similar length pad less: the largest single speed-up on real text (see benchmarks/).
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
    )
    # train.args: the user's TrainingArguments (names checked by the schema) win over finetune's derived defaults
    # (optim, warmup_steps, dataloader workers, ...); settings with a recipe key of their own are refused there.
    options.update(train.args)
    try:
        return task.training_arguments(**options)
    except (TypeError, ValueError) as error:
        if not train.args:
            raise
        raise UserError(f"train.args {train.args}: transformers refused them: {error}") from error
