"""The Trainer as every task uses it: evaluation in dataset order, a seeded length-grouped training order, and the
libraries' logging set to finetune's verbosity."""

from __future__ import annotations

import logging
from typing import Any

from finetune.console import quiet_progress_bars, verbosity


def configure_library_logging() -> None:
    import transformers

    level = {"quiet": transformers.logging.ERROR, "verbose": transformers.logging.INFO}
    transformers.logging.set_verbosity(level.get(verbosity(), transformers.logging.WARNING))
    quiet_progress_bars()
    if verbosity() != "verbose":
        # On the emitting logger, not a handler: a logger's filter runs before propagation, and transformers
        # propagates to the root logger's handlers when CI=1 is set.
        for name, messages in _HARMLESS.items():
            logger = logging.getLogger(name)
            if not any(isinstance(existing, _Harmless) for existing in logger.filters):
                logger.addFilter(_Harmless(messages))


# transformers warnings that tell a finetune user nothing they can act on (shown with --verbose), by logger.
_HARMLESS = {
    # Checkpoint rotation when two checkpoints are saved within a second; the fallback order is the right one.
    "transformers.trainer_utils": ("mtime may not be reliable",),
}


class _Harmless(logging.Filter):
    def __init__(self, messages: tuple[str, ...]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.messages)


def evaluating_in_order(trainer_class: type) -> type:
    """The task's Trainer, evaluating in dataset order and grouping training batches by length reproducibly.

    transformers 5 applies train_sampling_strategy="group_by_length" to evaluation too, with a random length-grouped
    sampler: metrics survive, but predictions no longer line up with the rows they belong to. Tasks that want
    length-sorted evaluation sort the dataset themselves and restore the order. For training, its sampler draws from
    the global RNG, which breaks exact resumption; ours is seeded per epoch (see sampling.py).
    """
    from torch.utils.data import SequentialSampler

    from finetune.compat import TrainerHooks, tied_weight_keys

    bases = (trainer_class,) if issubclass(trainer_class, TrainerHooks) else (TrainerHooks, trainer_class)

    class InOrderTrainer(*bases):  # type: ignore[misc]
        def eval_sampler(self, dataset: Any) -> Any:
            if dataset is None or self.args.world_size > 1:
                return None  # the Trainer's own: distributed evaluation shards the data
            return SequentialSampler(dataset)

        def train_sampler(self, dataset: Any) -> Any:
            if self.args.train_sampling_strategy != "group_by_length" or "input_ids" not in dataset.column_names:
                return None
            from finetune.data.sampling import SeededLengthGroupedSampler, example_lengths

            return SeededLengthGroupedSampler(
                example_lengths(dataset), self.args.train_batch_size * self.args.gradient_accumulation_steps,
                seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed)

        def ignore_load_warnings(self, load_result: Any) -> bool:
            # Checkpoints store tied weights once (T5's and GPT-2's output layer is the input embedding): reloading
            # the best one reports the others missing although nothing is. Re-tie instead of warning.
            missing = set(load_result.missing_keys)
            if missing and not load_result.unexpected_keys and missing <= tied_weight_keys(self.model):
                self.model.tie_weights()
                return True
            return super().ignore_load_warnings(load_result)

    InOrderTrainer.__name__ = trainer_class.__name__
    return InOrderTrainer
