"""Loading pretrained configs, models and tokenizers, with errors a user can act on.

Shared by every task. A name that is neither a local model folder nor reachable on the Hub fails at once with a
hint to pass a local path (see hub.py), not after a minute of retries or with a raw OSError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.hub import looks_like_path, not_found_hint, prepare_for_hub
from finetune.outputs.run_dir import MODEL_CONFIG_FILE, model_folder_problem

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

    from finetune.config.schema import ModelSection


def _name(model: ModelSection) -> str:
    if not model.name:  # the task registry fills in the task's default model
        raise UserError("No model given: pass --model (a Hub id or a local folder).")
    return model.name


def _source_kwargs(model: ModelSection) -> dict[str, Any]:
    return {"revision": model.revision, "trust_remote_code": model.trust_remote_code}


def _translate_load_error(model: ModelSection, error: Exception) -> UserError:
    name = _name(model)
    if looks_like_path(name) and not Path(name).expanduser().exists():
        return UserError(not_found_hint(name, "model"))  # the library's detail would be the Hub's repo-id rules
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UserError(f"{not_found_hint(name, 'model')} ({detail})")


def load_config(model: ModelSection, **overrides: Any) -> PretrainedConfig:
    prepare_for_hub(model.name)
    from transformers import AutoConfig

    if model.trust_remote_code:
        import logging

        logging.getLogger("finetune").warning("trust_remote_code is on: code shipped with '%s' will run.", model.name)
    local = Path(_name(model)).expanduser()
    if local.is_dir() and (local / MODEL_CONFIG_FILE).is_file():
        # A folder with a config but missing or broken weights or tokenizer files would load "successfully":
        # random weights, or a tokenizer that maps every word to [UNK]. Only whole models are used.
        problem = model_folder_problem(local)
        if problem:
            raise UserError(f"{model.name} is not a complete model folder: {problem}.")
    try:
        return AutoConfig.from_pretrained(_name(model), **_source_kwargs(model), **overrides)
    except (OSError, ValueError, KeyError) as error:
        raise _translate_load_error(model, error) from error


def load_tokenizer(model: ModelSection, config: PretrainedConfig, max_length: int | None = None,
                   **kwargs: Any) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model.name, **_source_kwargs(model), **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise _translate_load_error(model, error) from error
    if tokenizer.pad_token is None:
        # GPT-2 style tokenizers have no pad token; the end-of-text token is the usual stand-in.
        if tokenizer.eos_token is None:
            raise UserError(f"Tokenizer of '{model.name}' has neither a pad nor an end-of-sequence token.")
        tokenizer.pad_token = tokenizer.eos_token
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if max_length is not None and limit is not None and max_length > limit:
        raise UserError(f"max_length {max_length} is larger than '{model.name}' allows ({limit} positions). "
                        f"Pass --max-length {limit} or less.")
    return tokenizer


class _WithoutLoadReport:
    """transformers 5 prints a LOAD REPORT table on every load with missing or unexpected weights, in red even for a
    classifier's head, which is new by design. Outside --verbose it is replaced by one line (see _report_loading)."""

    LOGGER = "transformers.modeling_utils"

    def filter(self, record: Any) -> bool:
        return "LOAD REPORT" not in str(record.msg)

    def __enter__(self) -> None:
        import logging

        from finetune.console import verbosity

        self.active = verbosity() != "verbose"
        if self.active:
            logging.getLogger(self.LOGGER).addFilter(self)

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            import logging

            logging.getLogger(self.LOGGER).removeFilter(self)


def _report_loading(loaded: Any, info: dict[str, Any], new_head: str | None) -> None:
    """One line for what a user should know about the load: weights the checkpoint did not have (a new head, or
    something that looks wrong), and weights re-initialised to another size. Tied weights (saved once, shared) and
    checkpoint weights the model does not use (a pretraining head) are not news."""
    import logging

    from finetune.compat import tied_weight_keys

    logger = logging.getLogger("finetune")
    missing = sorted(set(info.get("missing_keys") or ()) - tied_weight_keys(loaded))
    mismatched = sorted(str(entry[0]) if isinstance(entry, (tuple, list)) else str(entry)
                        for entry in info.get("mismatched_keys") or ())
    fresh = sorted({key.rsplit(".", 1)[0] for key in [*missing, *mismatched]})
    if not fresh:
        return
    if new_head:
        from finetune.console import verbosity

        if verbosity() != "quiet":  # expected, so news only: --quiet keeps warnings
            logger.warning("new %s (%s)", new_head, ", ".join(fresh))
    else:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        logger.warning("%d weights were not in the checkpoint and start random: %s", len(missing), shown)


def load_pretrained(model_class: Any, model: ModelSection, new_head: str | None = None, **kwargs: Any) -> Any:
    """`model_class.from_pretrained` (an Auto* class) with readable errors and a one-line load report; `new_head`
    says what the task expects to start random ("classification head initialised: 2 labels")."""
    try:
        with _WithoutLoadReport():
            loaded, info = model_class.from_pretrained(model.name, **_source_kwargs(model), output_loading_info=True,
                                                       **kwargs)
    except (OSError, ValueError) as error:
        if "Unrecognized configuration class" in str(error):
            raise UserError(f"'{model.name}' ({type(kwargs.get('config')).__name__}) cannot be loaded as "
                            f"{model_class.__name__}: it is the wrong kind of model for this task.") from error
        raise _translate_load_error(model, error) from error
    _report_loading(loaded, info, new_head)
    return loaded
