"""On-disk caches that let a re-run skip work it has already done: reading data files and tokenizing splits.

`datasets` caches `.map` results only for datasets backed by its own Arrow files, and names them by a hash of the
mapped function, which for a closure over a task object is often random. Here the key is explicit:

- a tokenized split is keyed by the data (the fingerprint of a file-backed dataset, else a hash of the columns
  read), the tokenizer (its class, name, vocabulary and every setting that changes its output, hashed from its
  serialized form), the caller's settings (max_length, text columns, label mapping, ...) and the source of the
  module that does the tokenizing, so a change to any of them tokenizes again;
- a data file parsed in Python (GLUE TSVs) is keyed by its path, size and modification time, plus the reader's
  source and settings.

Files go to $FINETUNE_CACHE_DIR, default `finetune/` under the datasets cache (HF_DATASETS_CACHE, normally
~/.cache/huggingface/datasets). FINETUNE_NO_CACHE=1, or `datasets.disable_caching()`, turns both caches off. Splits
of fewer than MIN_ROWS rows are not cached: tokenizing them takes milliseconds.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.compat import dataset_fingerprint, dataset_from_arrow_file

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger("finetune")

CACHE_VERSION = 1  # bump when the layout or the meaning of cached files changes
CACHE_DIR_VARIABLE = "FINETUNE_CACHE_DIR"
NO_CACHE_VARIABLE = "FINETUNE_NO_CACHE"
MIN_ROWS = 1000


def cache_root() -> Path | None:
    """Where cached files go, or None when caching is off."""
    if os.environ.get(NO_CACHE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no"):
        return None
    import datasets

    if not datasets.is_caching_enabled():
        return None
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    root = Path(configured).expanduser() if configured else Path(datasets.config.HF_DATASETS_CACHE) / "finetune"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        logger.warning("Not caching tokenized data: cannot create %s (%s). Set %s to a writable folder.", root,
                       error.strerror, CACHE_DIR_VARIABLE)
        return None
    if not os.access(root, os.W_OK):
        logger.warning("Not caching tokenized data: %s is not writable. Set %s to a writable folder.", root,
                       CACHE_DIR_VARIABLE)
        return None
    return root


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (anything else by its str)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def _source_hash(function: Any) -> str:
    """Hash of the source file that defines `function` (or of a module): editing the code that produced a cached
    file invalidates it."""
    try:
        path = inspect.getsourcefile(function)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    except (OSError, TypeError):
        return getattr(function, "__qualname__", "")


def _versions() -> dict[str, str]:
    import datasets

    versions = {"datasets": datasets.__version__}
    for name in ("transformers", "tokenizers"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def dataset_identity(dataset: datasets.Dataset, columns: Sequence[str]) -> str:
    """What a split holds: its fingerprint when it is backed by Arrow files on disk (datasets derives that from
    the files and every transform since, deterministically), else a hash of the Arrow data of `columns`."""
    if dataset.cache_files:
        return f"fingerprint:{dataset_fingerprint(dataset)}"
    import pyarrow as pa

    present = [column for column in columns if column in dataset.column_names]
    table = dataset.select_columns(present).with_format("arrow")[:]  # indices (select, shuffle) applied
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return f"content:{hashlib.sha256(memoryview(sink.getvalue())).hexdigest()}:{len(dataset)}"


# tokenizer -> (its length, hash of its vocabulary and pipeline): hashing a 30k-word vocabulary takes 0.1 s, and a
# run tokenizes up to three splits with the same tokenizer.
_VOCABULARY_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _vocabulary_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    try:
        length, known = _VOCABULARY_HASHES.get(tokenizer, (None, None))
    except TypeError:  # not weakly referenceable
        length, known = None, None
    if known is not None and length == len(tokenizer):
        return known
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # Truncation and padding are set on the backend by each call (from its arguments, which the caller's
        # settings hold): what an earlier call left there must not change the key.
        state.pop("truncation", None)
        state.pop("padding", None)
        # Serialized in the backend's own (deterministic) key order: sorting 30k vocabulary entries costs 0.1 s.
        value = hashlib.sha256(json.dumps(state, ensure_ascii=False).encode("utf-8")).hexdigest()[:40]
    else:
        value = digest(sorted(tokenizer.get_vocab().items()))
    try:
        _VOCABULARY_HASHES[tokenizer] = (len(tokenizer), value)
    except TypeError:
        pass
    return value


# Tokenizer attributes that change its output and may be set after loading (a translation tokenizer's languages).
_RUNTIME_SETTINGS = ("src_lang", "tgt_lang", "add_prefix_space", "add_bos_token", "add_eos_token", "do_lower_case")


def tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> str:
    """Everything about a tokenizer that changes the ids it produces, hashed."""
    vocabulary = _vocabulary_hash(tokenizer)
    settings = {key: value for key, value in getattr(tokenizer, "init_kwargs", {}).items()
                if isinstance(value, (str, int, float, bool, type(None)))}
    return digest(type(tokenizer).__name__, getattr(tokenizer, "name_or_path", ""), len(tokenizer), vocabulary,
                  list(getattr(tokenizer, "model_input_names", [])), getattr(tokenizer, "truncation_side", None),
                  getattr(tokenizer, "padding_side", None), getattr(tokenizer, "model_max_length", None),
                  getattr(tokenizer, "special_tokens_map", {}), settings,
                  # Set on the object after loading, these change the ids without showing in init_kwargs.
                  {name: getattr(tokenizer, name, None) for name in _RUNTIME_SETTINGS})



def map_cached(split: datasets.Dataset, function: Callable[..., dict[str, list]], *,
               tokenizer: PreTrainedTokenizerBase | None, columns: Sequence[str], settings: dict[str, Any],
               remove_columns: Sequence[str] | None = None, desc: str = "Tokenizing",
               batch_size: int | None = 1000, code: Sequence[Any] = (), with_indices: bool = False
               ) -> datasets.Dataset:
    """`split.map(function, batched=True)`, read back from the cache when the same data was mapped the same way.

    `columns` are the columns `function` reads; `settings` every other input it depends on (max_length, label
    mapping, prefixes...): both go into the key, with the tokenizer and the source of the module of `function` and
    of the modules in `code` (the helpers it calls: editing any of them tokenizes again).
    `batch_size=None` maps the whole split as one batch; `with_indices` passes each batch's row indices too.
    """
    kwargs: dict[str, Any] = {"batched": True, "batch_size": batch_size, "desc": desc, "with_indices": with_indices,
                              "remove_columns": list(split.column_names if remove_columns is None else remove_columns)}
    key = digest(CACHE_VERSION, "map", dataset_identity(split, columns), list(columns),
                 tokenizer_identity(tokenizer) if tokenizer is not None else None, settings,
                 _source_hash(function), [_source_hash(module) for module in code], _versions())
    root = cache_root()
    if root is None or len(split) < MIN_ROWS:
        # The key as fingerprint even so: otherwise datasets hashes the function, pickling the tokenizer it
        # refers to (half a second for a BERT vocabulary). With caching off, datasets must not reuse its own
        # cache files of file-backed splits either.
        return split.map(function, new_fingerprint=key[:32], load_from_cache_file=root is not None, **kwargs)
    target = root / "tokenized" / f"{key}.arrow"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        logger.info("Tokenized data from the cache: %s", target)
    return split.map(function, cache_file_name=str(target), load_from_cache_file=True, new_fingerprint=key[:32],
                     **kwargs)


def cached_file_dataset(path: str | Path, build: Callable[[], datasets.Dataset], *,
                        settings: Any = None, code: Sequence[Any] = ()) -> datasets.Dataset:
    """`build()`, a dataset parsed from the file at `path`, kept as a memory-mapped Arrow file for the next run.

    The key is the file's resolved path, size and modification time, `settings`, and the source of the module that
    defines `build` and of the modules in `code`. A parse that warns (skipped rows, say) is not cached, so the
    warning shows on every run.
    """
    root = cache_root()
    if root is None:
        return build()

    path = Path(path)
    stat = path.stat()
    key = digest(CACHE_VERSION, "file", str(path.resolve()), stat.st_size, stat.st_mtime_ns, settings,
                 _source_hash(build), [_source_hash(module) for module in code], _versions())
    target = root / "files" / f"{key}.arrow"
    if target.is_file():
        try:
            # The fingerprint the first run gave it, so keys derived from it (tokenization) match across runs.
            return dataset_from_arrow_file(target, fingerprint=key[:32])
        except (OSError, ValueError) as error:  # a damaged cache file: parse again
            logger.info("Ignoring the unreadable cache file %s (%s)", target, error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = build()
    for warning in caught:  # passed on, attributed to the code that asked for the data
        warnings.warn(warning.message, stacklevel=3)
    if caught or len(dataset) < MIN_ROWS:
        return dataset
    target.parent.mkdir(parents=True, exist_ok=True)
    return dataset.flatten_indices(cache_file_name=str(target), new_fingerprint=key[:32])
