"""Causal language modelling (`finetune generate`): inputs, learning, samples, predict, real data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from finetune.tasks.lm_inputs import (
    IGNORE_INDEX,
    CausalLMCollator,
    lines_to_documents,
    pack_blocks,
    prompt_completion_example,
)
from tests.conftest import requires_data
from tests.helpers import invoke, write_jsonl

SUBJECTS = ["the cat", "the dog", "a bird", "my sister", "the old man", "a child", "the farmer", "our teacher"]
VERBS = ["sees", "likes", "finds", "paints", "follows", "feeds"]
OBJECTS = ["a red ball", "the green door", "two small fish", "the tall tree", "a yellow kite", "the blue house"]


def make_sentences(count: int, seed: int) -> list[str]:
    """A toy language: random subject-verb-object sentences. Easy to learn, so perplexity must fall a lot."""
    generator = random.Random(seed)
    return [f"{generator.choice(SUBJECTS)} {generator.choice(VERBS)} {generator.choice(OBJECTS)} ."
            for _ in range(count)]


def make_pairs(count: int, seed: int) -> list[dict[str, str]]:
    """Instruction data in the Alpaca layout (instruction, optional input, output)."""
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        subject, verb, thing = generator.choice(SUBJECTS), generator.choice(VERBS), generator.choice(OBJECTS)
        rows.append({"instruction": f"what does {subject} do?", "input": "", "output": f" {subject} {verb} {thing} ."})
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lm-data")
    (folder / "train.txt").write_text("\n".join(make_sentences(2000, seed=0)) + "\n", encoding="utf-8")
    (folder / "valid.txt").write_text("\n".join(make_sentences(150, seed=1)) + "\n", encoding="utf-8")
    return {"train": folder / "train.txt", "valid": folder / "valid.txt",
            "pairs_train": write_jsonl(folder / "pairs_train.jsonl", make_pairs(120, seed=0)),
            "pairs_valid": write_jsonl(folder / "pairs_valid.jsonl", make_pairs(12, seed=1))}


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    from tests.builders import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2", make_sentences(2000, seed=0))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    from tests.builders import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama", make_sentences(2000, seed=0))


def generate_args(model: Path, output: Path, *extra: object) -> list:
    return ["generate", "--model", model, "--output-dir", output, "--batch-size", 16, "--max-new-tokens", 8,
            "train.logging_steps=1000", *extra]


def task_for(model: Path, **data: object):
    from finetune.config.loading import load_recipe
    from finetune.tasks import get_task

    return get_task(load_recipe(base={"task": "generation"}, flags={"model": {"name": str(model)}, "data": data}))


def tokenizer_of(model: Path):
    from finetune.config.schema import ModelSection
    from finetune.models.loading import load_tokenizer

    return load_tokenizer(ModelSection(name=str(model)), config=None)


# ---- tiny models -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_fixture", ["tiny_gpt2", "tiny_llama"])
def test_tiny_models_are_offline_causal_lms_whose_tokenizer_round_trips(model_fixture, request):
    from transformers import AutoModelForCausalLM

    path = request.getfixturevalue(model_fixture)
    tokenizer = tokenizer_of(path)
    text = "The farmer's dog  sees\ta café ☕ — twice!\n\nNew line."
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert tokenizer.eos_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id  # GPT-2 style
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    assert model.config.eos_token_id == tokenizer.eos_token_id


# ---- inputs: documents, packing, label masks --------------------------------------------------------------------


def test_lines_to_documents_splits_on_blank_lines_and_keeps_newlines():
    lines = ["First Citizen:", "Before we proceed,", "", "", "All:", "Speak, speak.", ""]
    assert lines_to_documents(lines) == ["First Citizen:\nBefore we proceed,", "All:\nSpeak, speak."]


def test_packing_fills_every_block_and_loses_only_the_remainder(tiny_gpt2):
    tokenizer = tokenizer_of(tiny_gpt2)
    documents = make_sentences(50, seed=3)
    sequences = [tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id] for doc in documents]
    stream = [token for sequence in sequences for token in sequence]
    block_size = 16

    blocks = pack_blocks(sequences, block_size)
    assert blocks and all(len(block) == block_size for block in blocks)
    packed = [token for block in blocks for token in block]
    assert packed == stream[:len(packed)]  # in order, nothing duplicated
    assert len(stream) - len(packed) == len(stream) % block_size < block_size  # only the final remainder is lost

    with_remainder = pack_blocks(sequences, block_size, keep_remainder=True)
    assert [token for block in with_remainder for token in block] == stream


def test_text_mode_packs_a_txt_file_with_eos_between_documents(tiny_gpt2, tmp_path):
    from finetune.data.sources import load_data

    text_file = tmp_path / "play.txt"
    text_file.write_text("ROMEO:\nBut soft!\n\nJULIET:\nAy me!\n\nROMEO:\nShe speaks.\n", encoding="utf-8")
    task = task_for(tiny_gpt2, train_file=str(text_file), validation_file=str(text_file), block_size=4)
    data = load_data(task.recipe.data)
    task.setup(data)
    assert task.format == "text"
    tokenizer = tokenizer_of(tiny_gpt2)
    documents = ["ROMEO:\nBut soft!", "JULIET:\nAy me!", "ROMEO:\nShe speaks."]
    stream = [token for doc in documents for token in tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id]]

    train = task.tokenize(data.train, tokenizer)
    assert all(len(ids) == 4 for ids in train["input_ids"])
    assert [token for ids in train["input_ids"] for token in ids] == stream[:len(stream) // 4 * 4]
    evaluation = task.tokenize(data.eval["validation"], tokenizer)  # evaluation keeps the partial last block
    assert [token for ids in evaluation["input_ids"] for token in ids] == stream


@pytest.mark.parametrize("model_fixture", ["tiny_gpt2", "tiny_llama"])
def test_prompt_tokens_and_padding_are_masked_and_eos_is_learned(model_fixture, request):
    import datasets

    from finetune.data.sources import LoadedData

    path = request.getfixturevalue(model_fixture)
    tokenizer = tokenizer_of(path)
    rows = [{"prompt": "what does the cat do?", "completion": " the cat sees a red ball ."},
            {"prompt": "a bird", "completion": " feeds"}]
    task = task_for(path)
    data = LoadedData(train=datasets.Dataset.from_list(rows), eval={"validation": datasets.Dataset.from_list(rows)})
    task.setup(data)
    assert task.format == "prompt_completion"
    tokenized = task.tokenize(data.train, tokenizer)
    batch = task.data_collator(tokenizer)([tokenized[0], tokenized[1]])

    eos = tokenizer.eos_token_id
    for row, ids, mask, labels in zip(rows, batch["input_ids"].tolist(), batch["attention_mask"].tolist(),
                                      batch["labels"].tolist()):
        prompt = tokenizer(row["prompt"])["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [eos]
        length = len(prompt) + len(completion)
        assert ids[:length] == prompt + completion
        assert labels[:len(prompt)] == [IGNORE_INDEX] * len(prompt)  # no loss on the prompt
        assert labels[len(prompt):length] == completion  # loss on the completion, its EOS included
        assert mask == [1] * length + [0] * (len(ids) - length)
        assert labels[length:] == [IGNORE_INDEX] * (len(ids) - length)  # padding: masked by position...
        assert ids[length:] == [tokenizer.pad_token_id] * (len(ids) - length)  # ...although pad is the EOS id
    assert tokenizer.pad_token_id == eos


def test_the_split_loss_comes_from_the_per_example_pass_without_another(tiny_gpt2):
    """finetune evaluate scores a split with write_predictions (per-example losses) and then extra_scores (the loss
    over all scored tokens): the second reuses the first's pass, and gives what a pass of its own would."""
    import datasets
    from transformers import AutoModelForCausalLM

    from finetune.data.sources import LoadedData
    from finetune.tasks.losses import example_losses, token_loss

    tokenizer = tokenizer_of(tiny_gpt2)
    rows = make_pairs(12, seed=5)
    task = task_for(tiny_gpt2)
    data = LoadedData(train=datasets.Dataset.from_list(rows), eval={"validation": datasets.Dataset.from_list(rows)})
    task.setup(data)
    task.tokenizer = tokenizer
    tokenized = task.tokenize(data.eval["validation"], tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    collator = task.data_collator(tokenizer)
    expected = token_loss(model, tokenized, collator, batch_size=5, shift=True)
    task.scored_losses = (tokenized, example_losses(model, tokenized, collator, batch_size=4))

    def no_pass(*args, **kwargs):
        raise AssertionError("a second forward pass over the split")

    model.forward = no_pass
    assert task.extra_scores(model, tokenized, batch_size=5)["loss"] == pytest.approx(expected, rel=1e-9)
    other = task.tokenize(datasets.Dataset.from_list(rows[:6]), tokenizer)  # another split: its own pass
    with pytest.raises(AssertionError, match="second forward pass"):
        task.extra_scores(model, other, batch_size=5)


def test_long_pairs_lose_the_start_of_the_prompt_first():
    example = prompt_completion_example(list(range(10, 30)), [1, 2, 3], eos_token_id=0, max_length=12)
    assert example["input_ids"] == list(range(22, 30)) + [1, 2, 3, 0]
    assert example["labels"] == [IGNORE_INDEX] * 8 + [1, 2, 3, 0]
    cut = prompt_completion_example([7] * 20, list(range(1, 30)), eos_token_id=0, max_length=12)
    assert cut["input_ids"] == [7] * 6 + [1, 2, 3, 4, 5, 6]  # the prompt keeps half; the completion is cut


def test_collator_labels_default_to_the_inputs_in_text_mode():
    batch = CausalLMCollator(pad_token_id=0)([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])
    # Every token but the first is predicted; counting the first would divide the summed loss by too much.
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_format_auto_finds_column_pairs_and_merges_alpaca_input(tiny_gpt2):
    import datasets

    from finetune.data.sources import LoadedData
    from finetune.errors import UserError

    rows = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
            {"instruction": "Say hi.", "input": "", "output": "hi"}]
    task = task_for(tiny_gpt2)
    data = LoadedData(train=datasets.Dataset.from_list(rows), eval={"v": datasets.Dataset.from_list(rows)})
    task.setup(data)
    assert (task.format, task.prompt_column, task.completion_column) == ("prompt_completion", "instruction", "output")
    assert task.prompts(data.train[:]) == ["Add the numbers.\n\n2 and 3", "Say hi."]

    unknown = LoadedData(train=datasets.Dataset.from_list([{"a": "x", "b": "y"}] * 3))
    with pytest.raises(UserError, match="Cannot tell which column holds the text"):
        task_for(tiny_gpt2).setup(unknown)


def test_without_validation_data_the_tail_is_held_out(tiny_gpt2):
    import datasets

    from finetune.data.sources import LoadedData

    data = LoadedData(train=datasets.Dataset.from_dict({"text": [f"line {i}" for i in range(100)]}))
    task_for(tiny_gpt2).setup(data)
    assert len(data.train) == 95 and data.train[-1]["text"] == "line 94"
    assert data.eval["validation"]["text"] == [f"line {i}" for i in range(95, 100)]


@pytest.mark.parametrize("model_fixture", ["tiny_gpt2", "tiny_llama"])
def test_left_padded_batches_generate_what_single_prompts_do(model_fixture, request):
    from transformers import AutoModelForCausalLM

    from finetune.config.schema import GenerationSection
    from finetune.tasks.decoding import encode_prompt, generate_continuations

    path = request.getfixturevalue(model_fixture)
    tokenizer = tokenizer_of(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompts = [encode_prompt(tokenizer, text, 64) for text in ("a", "the old man sees the tall", "my sister", "")]
    settings = GenerationSection(max_new_tokens=6)
    batched = generate_continuations(model, tokenizer, prompts, settings, batch_size=4)
    alone = [generate_continuations(model, tokenizer, [ids], settings, batch_size=1)[0] for ids in prompts]
    assert batched == alone
    assert len(batched) == len(prompts)


# ---- end to end through the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tiny_gpt2, corpus, tmp_path_factory) -> Path:
    """A tiny GPT-2 trained for 60 steps (about half a CPU minute) on the toy language."""
    output = tmp_path_factory.mktemp("runs") / "gpt2-sentences"
    result = invoke(generate_args(tiny_gpt2, output, "--train-file", corpus["train"], "--validation-file",
                                  corpus["valid"], "--block-size", 64, "--max-steps", 60, "train.learning_rate=5e-3"))
    assert result.exit_code == 0, result.output
    return output


def test_training_lowers_eval_perplexity_by_a_large_factor(trained_run, tiny_gpt2):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    before, after = metrics["eval_perplexity_before_training"], metrics["eval_perplexity"]
    vocab = len(tokenizer_of(tiny_gpt2))
    assert vocab / 4 < before < vocab * 4  # an untrained model is about uniform over its vocabulary
    assert after == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-6)
    # Measured: about 320 -> 4.5 (70x) in 60 steps; 10x leaves a wide margin for seeds and library versions.
    assert before / after >= 10, (before, after)
    assert metrics["trainable_parameters"] == metrics["total_parameters"] > 0


def test_generation_card_lists_only_final_evaluation_metrics(trained_run):
    from tests.helpers import checked_model_card

    card = checked_model_card(trained_run)
    assert {result.metric_type for result in card.data.eval_results} == {"loss", "perplexity"}
    assert card.data.pipeline_tag == "text-generation"


def test_tensorboard_events_stay_in_the_run_directory(tiny_gpt2, corpus, tmp_path, monkeypatch):
    """The evaluation before training logs before the Trainer's on_train_begin: it once went to ./runs."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    output = tmp_path / "run"
    result = invoke(generate_args(tiny_gpt2, output, "--train-file", corpus["train"], "--validation-file",
                                  corpus["valid"], "--block-size", 32, "--max-steps", 4, "train.logging_steps=2",
                                  "train.report_to=tensorboard"))  # one name, not a list
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "runs").exists()
    (log_dir,) = (output / "runs").iterdir()
    events = EventAccumulator(str(log_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/loss", "eval/perplexity"} <= tags
    steps = [event.step for event in events.Scalars("eval/perplexity")]
    assert steps[0] == 0 and steps[-1] == 4  # before training, then after the last step


def test_samples_and_predictions_show_before_and_after(trained_run):
    samples = [json.loads(line) for line in (trained_run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4  # generation.num_samples
    assert all(set(sample) == {"prompt", "before", "after"} and sample["prompt"] for sample in samples)
    assert any(sample["before"] != sample["after"] for sample in samples)
    records = [json.loads(line) for line in (trained_run / "predictions" / "validation.jsonl").read_text().splitlines()]
    assert records and {"text", "tokens", "loss", "perplexity"} <= set(records[0])


def test_predict_prints_a_continuation(trained_run):
    result = invoke(["predict", trained_run, "--prompt", "the old man", "--max-new-tokens", 6])
    assert result.exit_code == 0, result.output
    assert result.output.strip()

    result = invoke(["predict", trained_run, "--prompt", "a bird", "--json", "--temperature", 0.7, "--top-k", 5])
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["input"] == "a bird" and record["output"]


def test_predict_streams_token_by_token_to_stdout(trained_run, capsys):
    from finetune.tasks.base import PredictRequest
    from finetune.tasks.predict import predict

    inputs = [("the dog", None), ("my sister", None)]
    _, streamed = predict(trained_run, PredictRequest(inputs, {"max_new_tokens": 5}, stream=True))
    outputs = [record["output"] for record in streamed]
    printed = capsys.readouterr().out
    assert all(output and output in printed for output in outputs)
    _, batched = predict(trained_run, PredictRequest(inputs, {"max_new_tokens": 5}))
    assert outputs == [record["output"] for record in batched]


def test_prompt_completion_run_reports_bleu_rouge_and_writes_completions(tiny_llama, corpus, tmp_path):
    output = tmp_path / "run"
    result = invoke(generate_args(tiny_llama, output, "--train-file", corpus["pairs_train"], "--validation-file",
                                  corpus["pairs_valid"], "--max-steps", 4, "--sample-prompt", "what does a bird do?"))
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    expected = {"eval_loss", "eval_perplexity", "eval_bleu", "eval_rougeL", "eval_perplexity_before_training"}
    assert expected <= set(metrics)
    records = [json.loads(line) for line in (output / "predictions" / "validation.jsonl").read_text().splitlines()]
    assert len(records) == 12 and set(records[0]) == {"prompt", "reference", "prediction", "loss"}
    samples = [json.loads(line) for line in (output / "samples.jsonl").read_text().splitlines()]
    assert [sample["prompt"] for sample in samples] == ["what does a bird do?"]


def test_block_size_beyond_the_model_is_a_user_error(tiny_gpt2, corpus, tmp_path):
    result = invoke(generate_args(tiny_gpt2, tmp_path / "run", "--train-file", corpus["train"], "--block-size", 4096))
    assert result.exit_code == 2
    assert "--block-size 512" in result.output


# ---- real data ---------------------------------------------------------------------------------------------------


@requires_data
@pytest.mark.parametrize("relative", ["lm/tinyshakespeare/input.txt", "lm/wikitext-2/valid.txt"])
def test_real_corpora_train_end_to_end(relative, data_dir, tiny_gpt2, tmp_path):
    output = tmp_path / "run"
    result = invoke(generate_args(tiny_gpt2, output, "--train-file", data_dir / relative, "--max-train-samples", 1500,
                                  "--block-size", 64, "--max-steps", 5, "train.learning_rate=5e-3"))
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["eval_perplexity"] > 1 and metrics["eval_samples"]["validation"] > 0  # the held-out tail
    assert metrics["eval_perplexity"] < metrics["eval_perplexity_before_training"]
    samples = (output / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 4 and all(json.loads(line)["after"] is not None for line in samples)


@requires_data
def test_shipped_tinyshakespeare_recipe_runs_with_a_tiny_model(data_dir, tiny_gpt2, tmp_path):
    output = tmp_path / "run"
    result = invoke(["train", "generation/tinyshakespeare-gpt2", f"model.name={tiny_gpt2}",
                     f"data.train_file={data_dir / 'lm/tinyshakespeare/input.txt'}", "data.max_train_samples=800",
                     "data.block_size=64", "train.max_steps=2", "generation.max_new_tokens=8", f"output_dir={output}"])
    assert result.exit_code == 0, result.output
    assert "eval_perplexity" in json.loads((output / "metrics.json").read_text())
    samples = [json.loads(line) for line in (output / "samples.jsonl").read_text().splitlines()]
    assert [sample["prompt"] for sample in samples] == ["ROMEO:", "First Citizen:"]
