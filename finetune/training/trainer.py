"""The Trainer as every task uses it: evaluation in dataset order, a seeded length-grouped training order, and the
libraries' logging set to finetune's verbosity."""

from __future__ import annotations

from typing import Any

from finetune.console import show_progress, verbosity


def configure_library_logging() -> None:
    import datasets
    import transformers

    level = {"quiet": transformers.logging.ERROR, "verbose": transformers.logging.INFO}
    transformers.logging.set_verbosity(level.get(verbosity(), transformers.logging.WARNING))
    if not show_progress():
        datasets.disable_progress_bars()
        transformers.logging.disable_progress_bar()


def evaluating_in_order(trainer_class: type) -> type:
    """The task's Trainer, evaluating in dataset order and grouping training batches by length reproducibly.

    transformers 5 applies train_sampling_strategy="group_by_length" to evaluation too, with a random length-grouped
    sampler: metrics survive, but predictions no longer line up with the rows they belong to. Tasks that want
    length-sorted evaluation sort the dataset themselves and restore the order. For training, its sampler draws from
    the global RNG, which breaks exact resumption; ours is seeded per epoch (see sampling.py).
    """
    from torch.utils.data import SequentialSampler

    from finetune.compat import TrainerHooks

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

    InOrderTrainer.__name__ = trainer_class.__name__
    return InOrderTrainer
