"""The recipe schema: every key a recipe may hold, its type, default and meaning.

A recipe comes from YAML (`finetune train recipe.yaml`) or from command-line flags (`finetune classify ...`); both
end as the same validated `Recipe` (see loading.py). The field descriptions here are the single source of the
command-line help (flags.py) and of the README's recipe reference (reference.py).

The schema does not know what a task does: `task` is a name that the task registry (finetune.tasks) checks, and
the registry fills in the task's default model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Names users already type, from transformers' TrainingArguments and its example scripts (run_glue.py,
# run_summarization.py, TRL): accepted for the finetune key they mean, in recipes, overrides and as flags
# (--num_train_epochs). Keys are dotted as in a recipe: train.num_train_epochs is train.epochs.
HF_NAMES: dict[str, str] = {
    "model.model_name_or_path": "model.name",
    "data.dataset_name": "data.dataset",
    "data.dataset_config_name": "data.config",
    "data.max_seq_length": "data.max_length", "data.max_source_length": "data.max_length",
    "data.text_column": "data.source_column",
    "data.summary_column": "data.target_column",
    "train.num_train_epochs": "train.epochs",
    "train.per_device_train_batch_size": "train.batch_size",
    "train.per_device_eval_batch_size": "train.eval_batch_size",
    "train.lr_scheduler_type": "train.lr_scheduler",
    "train.resume_from_checkpoint": "train.resume",
    "train.report_to": "train.report_to",
    "hub_model_id": "push_to_hub",
}
# transformers' precision switches: train.bf16=true (--bf16) is train.mixed_precision=bf16.
HF_SWITCHES: dict[str, tuple[str, str]] = {"train.bf16": ("train.mixed_precision", "bf16"),
                                          "train.fp16": ("train.mixed_precision", "fp16")}
# TrainingArguments fields finetune sets from its own recipe keys: train.args may not set them (one place per
# setting), the error names the key to use.
TRAINING_ARGUMENTS_FROM_KEYS: dict[str, str] = {
    "output_dir": "output_dir", "num_train_epochs": "train.epochs", "max_steps": "train.max_steps",
    "learning_rate": "train.learning_rate", "per_device_train_batch_size": "train.batch_size",
    "per_device_eval_batch_size": "train.eval_batch_size",
    "gradient_accumulation_steps": "train.gradient_accumulation_steps", "weight_decay": "train.weight_decay",
    "warmup_ratio": "train.warmup_ratio", "lr_scheduler_type": "train.lr_scheduler", "seed": "train.seed",
    "data_seed": "train.seed", "eval_strategy": "train.eval_strategy", "eval_steps": "train.eval_steps",
    "save_strategy": "train.eval_strategy", "save_steps": "train.eval_steps",
    "save_total_limit": "train.save_total_limit", "load_best_model_at_end": "train.eval_strategy",
    "metric_for_best_model": "train.metric_for_best_model", "greater_is_better": "train.metric_for_best_model",
    "logging_steps": "train.logging_steps", "report_to": "train.report_to", "use_cpu": "train.use_cpu",
    "bf16": "train.mixed_precision", "fp16": "train.mixed_precision",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "activation_checkpointing": "train.gradient_checkpointing", "auto_find_batch_size": "train.auto_find_batch_size",
    "torch_compile": "train.torch_compile", "resume_from_checkpoint": "train.resume", "push_to_hub": "push_to_hub",
    "hub_model_id": "push_to_hub", "deepspeed": "distributed.deepspeed", "fsdp": "distributed.fsdp",
    "fsdp_config": "distributed.fsdp_wrap", "group_by_length": "train.group_by_length",
    "train_sampling_strategy": "train.group_by_length",
}


def canonical_keys(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`data` (one recipe layer) with the HF names (HF_NAMES, HF_SWITCHES) renamed to finetune's keys, and the
    conflicts: an HF name given next to the key it means, with another value."""
    result = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    conflicts = []
    renames: dict[str, tuple[str, str | None]] = {alias: (target, None) for alias, target in HF_NAMES.items()
                                                  if alias != target}
    renames.update(HF_SWITCHES)
    for alias, (target, constant) in renames.items():
        *alias_sections, alias_leaf = alias.split(".")
        holder = result.get(alias_sections[0]) if alias_sections else result
        if not isinstance(holder, dict) or alias_leaf not in holder:
            continue
        value = holder.pop(alias_leaf)
        if constant is not None:  # a switch: true sets the key, false says nothing
            if not value:
                continue
            value = constant
        *sections, leaf = target.split(".")
        destination = result.setdefault(sections[0], {}) if sections else result
        if not isinstance(destination, dict):
            continue
        if leaf in destination and destination[leaf] != value:
            conflicts.append(f"'{alias}' ({value!r}) and '{target}' ({destination[leaf]!r}) are the same setting: "
                             f"give one")
        destination[leaf] = value
    return result, conflicts


def training_argument_names() -> set[str]:
    """Every field of the installed transformers' (Seq2Seq)TrainingArguments."""
    import dataclasses

    from transformers import Seq2SeqTrainingArguments

    return {field.name for field in dataclasses.fields(Seq2SeqTrainingArguments) if field.init}


def comma_list(value: Any) -> Any:
    """A list key given as one value with commas (`text,labels,id` from a flag or an override), or a list."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [name.strip() for item in value for name in str(item).split(",") if name.strip()]
    return value


class _Section(BaseModel):
    # extra="forbid": a typo is an error, never a silently ignored setting. allow_inf_nan=False: `.inf` and `.nan`
    # are valid YAML floats but no valid setting (epochs=.inf would train forever), so `check` refuses them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSection(_Section):
    name: str | None = Field(None, description="Hub id or local folder. Default: the task's (e.g. t5-small, gpt2).")
    revision: str | None = Field(None, description="Hub branch, tag or commit of the model.")
    trust_remote_code: bool = Field(False, description="Run Python code shipped with the model. Off unless asked.")


class DataSection(_Section):
    # classification's --dataset adds glue/<task> (tasks/classification.py): other commands must not offer it.
    dataset: str | None = Field(None, description="A Hub dataset id (id or id:config), or a local file or folder.")
    config: str | None = Field(None, description="Hub dataset configuration (subset) name.")
    data_dir: str | None = Field(None, description="Folder with GLUE data on disk (original TSVs or HF parquet).")
    train_file: str | None = Field(None, description="Local csv/tsv/json/jsonl/parquet/txt or CoNLL (.conll) file "
                                                     "for training.")
    validation_file: str | None = Field(None, description="Local file for evaluation.")
    test_file: str | None = Field(None, description="Local file to predict on after training.")
    text_columns: list[str] | None = Field(None, description="One column, or two for sentence pairs. Default: guessed.")
    label_column: str | None = Field(None, description="Column with the label. Default: 'label' or the task's.")
    label_names: list[str] | None = Field(None, description="Label order (id 0, 1, ...), or a file with one label "
                                          "per line (read when the recipe loads). Default: from the data.")
    label_all_tokens: bool = Field(False, description="Token classification: label every sub-token of a word, not "
                                                      "only the first (the others are ignored by default).")
    multi_label: bool = Field(False, description="Several labels per example, as label_separator-delimited text "
                                                 "('2,3'). Lists in JSON/parquet are detected without it.")
    label_separator: str = Field(",", min_length=1, description="Multi-label: what separates labels in a text cell.")
    column_names: list[str] | None = Field(None, description="Column names in the data's order, e.g. text,labels,id: "
                                           "csv/tsv files then have no header line; other data is renamed.")
    train_split: str = Field("train", description="Split to train on.")
    eval_split: str | None = Field(None, description="Split to evaluate on. Default: validation (GLUE: its dev sets).")
    test_split: str | None = Field(None, description="Split to predict on after training. Default: none.")
    max_train_samples: int | None = Field(None, gt=0, description="Use only the first N training examples.")
    max_eval_samples: int | None = Field(None, gt=0, description="Use only the first N evaluation examples.")
    max_length: int = Field(128, gt=0, description="Longest input (source, prompt) in tokens; longer is truncated.")
    # Summarization and translation (encoder-decoder models).
    source_column: str | None = Field(None, description="Column with the document or source sentence.")
    target_column: str | None = Field(None, description="Column with the summary or translation.")
    source_prefix: str | None = Field(None, description="Text put before every source, e.g. T5's 'summarize: '.")
    source_lang: str | None = Field(None, description="Translation source language code, e.g. en.")
    target_lang: str | None = Field(None, description="Translation target language code, e.g. de.")
    max_target_length: int = Field(128, gt=0, description="Longest target (summary, translation) in tokens.")
    # Generation (decoder-only models).
    format: Literal["auto", "text", "prompt_completion", "chat"] = Field(
        "auto", description="text: pack raw documents into blocks; prompt_completion: loss on completions only; "
                            "chat: conversations through the chat template, loss on assistant turns only.")
    prompt_column: str | None = Field(None, description="Column with the prompt (or instruction).")
    completion_column: str | None = Field(None, description="Column with the completion (or response).")
    block_size: int | None = Field(None, gt=0, description="Tokens per packed block in text mode. Default: max_length.")
    system_prompt: str | None = Field(None, description="Chat: a system turn put first in every conversation "
                                                        "that has none.")
    chat_template: str | None = Field(None, description="Chat: a Jinja chat template file to use instead of the "
                                                        "model's own (a model without one gets ChatML).")
    skip_invalid: bool = Field(False, description="Chat: skip malformed conversations (with a warning) instead of "
                                                  "refusing to run.")
    few_shot: int = Field(0, ge=0, description="Chat: evaluation replies are asked after the first N conversations "
                                               "of data.few_shot_file as earlier turns (multi-turn few-shot).")
    few_shot_file: str | None = Field(None, description="Chat: example conversations for data.few_shot. Default: the "
                                                        "training file.")

    @field_validator("label_names", mode="before")
    @classmethod
    def _names_or_file(cls, value: Any) -> Any:
        """A file of label names (GoEmotions' emotions.txt): a path, or a one-item list naming a file."""
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0] if Path(value[0]).expanduser().is_file() else value
        if isinstance(value, str):
            path = Path(value).expanduser()
            if not path.is_file():
                raise ValueError(f"give a list of labels, or a file with one label per line ({value} not found)")
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return value

    _column_names = field_validator("column_names", mode="before")(comma_list)

    @field_validator("text_columns")
    @classmethod
    def _one_or_two(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(value) not in (1, 2):
            raise ValueError("give one text column, or two for sentence pairs")
        return value


class GenerationSection(_Section):
    """How text is generated, for evaluation and for `finetune predict` alike."""

    max_new_tokens: int = Field(64, gt=0, description="Most tokens generated per input.")
    num_beams: int = Field(1, gt=0, description="Beam search width (1: greedy or sampling).")
    length_penalty: float = Field(1.0, description="Beam search: >1 favours longer outputs.")
    no_repeat_ngram_size: int = Field(0, ge=0, description="Never repeat an n-gram of this size (0: off).")
    do_sample: bool = Field(False, description="Sample instead of greedy/beam decoding.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: keep the smallest set with this mass.")
    top_k: int = Field(50, ge=0, description="Sample among the k most likely tokens (0: off).")
    num_samples: int = Field(4, ge=0, description="Evaluation prompts written to samples.jsonl before/after training.")
    sample_prompts: list[str] = Field(default_factory=list, description="Prompts for samples.jsonl instead.")


class PeftSection(_Section):
    """LoRA adapters through PEFT: train a few million parameters instead of all of them."""

    enabled: bool = Field(False, description="Train LoRA adapters instead of the full model.")
    r: int = Field(8, gt=0, description="LoRA rank.")
    alpha: int = Field(16, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | None = Field(None, description="Module names to adapt. Default: per architecture.")


class TrainSection(_Section):
    epochs: float | None = Field(None, gt=0, le=100_000, description="Passes over the training data. Default: 3, "
                                 "or 6 for classification where an epoch has under 50 steps at batch 32.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate of AdamW. Default: by model "
                                        "size: 1e-4 under 50M parameters, 5e-5 to 200M, 2e-5 above; LoRA 2e-4.")
    batch_size: int | None = Field(None, gt=0, description="Examples per device per step. Default: 32, or 16/8 "
                                   "where an epoch has under 50 steps at 32.")
    eval_batch_size: int | None = Field(None, gt=0, description="Default: 2 x your batch_size, else 64.")
    gradient_accumulation_steps: int = Field(1, gt=0, description="Steps whose gradients add up before an update.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="Share of steps spent warming the learning "
                                       "rate up. Default: 0.1 with the default learning rate, 0 with one you set.")
    lr_scheduler: str = Field("linear", description="transformers scheduler name: linear, cosine, constant, ...")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for model initialisation and data order.")
    eval_strategy: Literal["epoch", "steps", "no"] = Field("epoch", description="When to evaluate.")
    eval_steps: int | None = Field(None, gt=0, description="Evaluate every N steps when eval_strategy is steps.")
    logging_steps: int | None = Field(None, gt=0, description="Log the training loss every N steps. Default: "
                                      "about 25 points per run (every step in runs under 50 steps).")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept on disk (the best is always kept).")
    metric_for_best_model: str | None = Field(None, description="Metric that picks the best checkpoint.")
    early_stopping_patience: int | None = Field(None, gt=0, description="Stop training when the best-model metric "
                                                "has not improved for this many evaluations. Default: off.")
    early_stopping_threshold: float = Field(0.0, ge=0, description="Early stopping: how much the metric must "
                                            "improve to count as better.")
    class_weights: Literal["auto"] | list[float] | None = Field(
        None, description="Classification and NER: weight each class's (tag's) loss, 'auto' (inverse frequency in "
                          "the training data) or one per label in label order; multi-label: BCE pos_weight per label.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Multi-label: a label is predicted when its "
                                                          "probability reaches this.")
    tune_threshold: bool | Literal["global", "per_label"] = Field(
        False, description="Multi-label: after training, pick the threshold with the best macro F1 on the validation "
                           "data, one for all labels (true or global) or one per label (per_label); saved with the "
                           "model.")
    group_by_length: bool = Field(True, description="Batch similar lengths together so padding stays small.")
    use_cpu: bool = Field(False, description="Train on the CPU even when a GPU is present.")
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = Field(
        "no", description="auto: bf16 where the GPU supports it, else fp16 on GPU; on CPU bf16 with AMX, else no.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward: less memory.")
    torch_compile: bool = Field(False, description="Compile the model with torch.compile: faster steps after a slow "
                                                   "first one, mostly on GPUs.")
    auto_find_batch_size: bool = Field(False, description="Halve the batch size on out-of-memory until it fits.")
    resume: bool | str = Field(False, description="Continue from the newest complete checkpoint (true) or a named "
                                                  "one (checkpoint-N or a path).")
    report_to: list[str] = Field(default_factory=list, description="Experiment trackers: tensorboard, wandb, ... "
                                                                   "(one name, a comma list or a YAML list).")
    args: dict[str, Any] = Field(default_factory=dict, description="Any other transformers TrainingArguments "
                                 "field, e.g. train.args.max_grad_norm=0.5, train.args.optim=adafactor.")

    @field_validator("eval_strategy", "mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML 1.1 reads a bare `no` as false

    _report_to = field_validator("report_to", mode="before")(comma_list)  # as transformers' --report_to a,b

    @field_validator("tune_threshold")
    @classmethod
    def _tuning(cls, value: bool | str) -> bool | str:
        return "global" if value is True else value  # `true` (the first spelling) is one threshold for all

    @field_validator("class_weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        """`auto`, a YAML list, or a comma list from a flag or override (`1,5`)."""
        if isinstance(value, str) and value.strip() != "auto":
            try:
                return [float(part) for part in value.split(",") if part.strip()]
            except ValueError:
                raise ValueError("give auto or one weight per label, e.g. 1,5") from None
        return value

    @field_validator("class_weights")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, list) and any(weight <= 0 for weight in value):
            raise ValueError("class weights must be positive numbers")
        return value

    @field_validator("args")
    @classmethod
    def _training_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Checked against the installed transformers, so a typo fails before any data or model is loaded."""
        if not value:
            return value
        import difflib

        known = training_argument_names()
        for name in value:
            if name in TRAINING_ARGUMENTS_FROM_KEYS:
                raise ValueError(f"'{name}' is set by recipe key {TRAINING_ARGUMENTS_FROM_KEYS[name]}: use that key")
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"'{name}' is not a field of transformers' TrainingArguments{hint}")
        return value


class DistributedSection(_Section):
    """Sharded training engines, mapped to the Trainer's own options (launch with --num-processes)."""

    deepspeed: str | None = Field(None, description="Path to a DeepSpeed JSON config (needs the deepspeed package).")
    zero_stage: int | None = Field(None, ge=0, le=3, description="DeepSpeed ZeRO stage, when no config file is given.")
    offload: bool = Field(False, description="ZeRO: keep optimizer state (stage 3: also parameters) in CPU memory.")
    fsdp: str | None = Field(None, description="FSDP mode, e.g. 'full_shard auto_wrap' or 'shard_grad_op'.")
    fsdp_wrap: list[str] | None = Field(None, description="FSDP auto-wrap: layer classes, e.g. [BertLayer].")

    @model_validator(mode="after")
    def _one_engine(self) -> DistributedSection:
        if (self.deepspeed or self.zero_stage is not None) and self.fsdp:
            raise ValueError("choose DeepSpeed or FSDP, not both")
        return self


class CardSection(_Section):
    """What the model card (README.md) states that the run itself cannot tell."""

    license: str | None = Field(None, description="License id for the card, e.g. apache-2.0. Default: the base "
                                                   "model's license on the Hub, when it can be read.")
    language: list[str] | None = Field(None, description="Language codes of the data, e.g. [en]. Default: "
                                                         "translation's source and target languages.")


class SweepSection(_Section):
    """`finetune sweep`: what it searches (the training commands ignore this section)."""

    params: dict[str, Any] = Field(default_factory=dict, description="Recipe key -> loguniform(LOW,HIGH), "
                                   "uniform(LOW,HIGH), int(LOW,HIGH), choice(A,B,...) or a fixed value; replaces the "
                                   "default space key by key.")
    trials: int = Field(20, gt=0, description="Trials the study holds when the sweep ends (--trials).")


class Recipe(_Section):
    task: str = Field("classification", min_length=1,
                      description="What the model learns to do: classification, token_classification, "
                                  "summarization, translation, generation.")
    description: str | None = Field(None, description="One line on what this recipe is for.")
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    peft: PeftSection = Field(default_factory=PeftSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)
    card: CardSection = Field(default_factory=CardSection)
    sweep: SweepSection = Field(default_factory=SweepSection)
    output_dir: str | None = Field(None, description="Run directory. Default: runs/<task>-<dataset>.")
    push_to_hub: str | None = Field(None, description="Hub repo id (user/name) to upload the finished run to.")

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        source = self.data.dataset or self.data.train_file or "data"
        slug = Path(source).stem if Path(source).suffix else source.replace("/", "-").strip("-.")
        return Path("runs") / f"{self.task}-{slug}"

    def with_absolute_paths(self) -> Recipe:
        """A copy whose local paths (data files and folders, a local model folder, the DeepSpeed config, the run
        directory) are absolute: the run's saved recipe.yaml then re-runs (and resumes) from any folder. Hub ids and
        glue/<task> names stay as they are."""

        def absolute(value: str | None, local: bool = True) -> str | None:
            if not value:
                return value
            path = Path(value).expanduser()
            # Data files may be prefixes of line-aligned files (data/train for train.en): a folder that exists.
            return str(path.resolve()) if path.exists() or (local and path.parent.is_dir()) else value

        data = self.data.model_copy(update={
            "dataset": absolute(self.data.dataset, local=False), "data_dir": absolute(self.data.data_dir),
            **{key: absolute(getattr(self.data, key))
               for key in ("train_file", "validation_file", "test_file", "chat_template", "few_shot_file")}})
        return self.model_copy(update={
            "model": self.model.model_copy(update={"name": absolute(self.model.name, local=False)}),
            "data": data,
            "distributed": self.distributed.model_copy(update={"deepspeed": absolute(self.distributed.deepspeed)}),
            "output_dir": str(self.resolved_output_dir().resolve())})

    def to_yaml(self) -> str:
        """The fully resolved recipe: running it again reproduces the run."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
