"""The GLUE benchmark as data: one `GlueTask` per Hugging Face `nyu-mll/glue` config.

Pure Python on purpose: the CLI imports this to validate a recipe before any heavy library loads, so no torch,
transformers, datasets or pandas here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finetune.errors import UserError, did_you_mean

NLI3 = ("entailment", "neutral", "contradiction")
NLI2 = ("entailment", "not_entailment")


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: where its files live, what its columns are called and how it is scored."""

    name: str  # HF config name, also the folder name in the parquet export
    tsv_dir: str  # folder name in the original GLUE download (`download_glue_data.py`)
    text_columns: tuple[str, ...]  # HF column names, in model input order
    label_names: tuple[str, ...] | None  # HF ClassLabel order (id = position); None for regression
    metrics: tuple[str, ...]  # official GLUE metrics; the first is the one the leaderboard ranks by
    eval_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    main_metric: str = field(init=False)

    def __post_init__(self) -> None:
        # Derived rather than passed so the table cannot disagree with itself.
        object.__setattr__(self, "main_metric", self.metrics[0])

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split name this task can have. AX is a test-only diagnostic set, so it has no train split."""
        train = () if not self.eval_splits else ("train",)
        return train + self.eval_splits + self.test_splits


GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",)),
        GlueTask("sst2", "SST-2", ("sentence",), ("negative", "positive"), ("accuracy",)),
        GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy")),
        GlueTask("qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
        GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), None, ("pearson", "spearmanr")),
        GlueTask(
            "mnli",
            "MNLI",
            ("premise", "hypothesis"),
            NLI3,
            ("accuracy",),
            eval_splits=("validation_matched", "validation_mismatched"),
            test_splits=("test_matched", "test_mismatched"),
        ),
        GlueTask("qnli", "QNLI", ("question", "sentence"), NLI2, ("accuracy",)),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), NLI2, ("accuracy",)),
        # WNLI's ids run the other way round from RTE/QNLI: 1 means entailment.
        GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",)),
        # The diagnostic set is scored with a model trained on MNLI, hence MNLI's labels; it ships unlabelled.
        GlueTask("ax", "diagnostic", ("premise", "hypothesis"), NLI3, ("matthews_correlation",), eval_splits=()),
    )
}


def _normalize(name: str) -> str:
    # "SST-2", "sst_2" and "sst2" all mean the same task.
    return "".join(ch for ch in name.lower() if ch.isalnum())


# Every spelling we accept, normalized: the HF config name and the original GLUE folder name ("STS-B", "diagnostic").
_ALIASES: dict[str, GlueTask] = {
    _normalize(alias): task for task in GLUE_TASKS.values() for alias in (task.name, task.tsv_dir)
}


def get_glue_task(name: str) -> GlueTask:
    """Look a GLUE task up by HF config name or original folder name, ignoring case, '-' and '_'."""
    task = _ALIASES.get(_normalize(name))
    if task is None:
        raise UserError(
            f"Unknown GLUE task '{name}'. Valid tasks: {', '.join(GLUE_TASKS)}."
            + did_you_mean(name.lower(), GLUE_TASKS)
        )
    return task
