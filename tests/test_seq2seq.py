"""Summarization and translation (`finetune summarize`, `finetune translate`) on tiny T5 and BART models.

The learning test is the one that proves the wiring: on a word-reversal task a tiny T5 goes from BLEU ~0 to >= 50
through the CLI, which only happens when preprocessing, labels, generation and scoring all line up. The real-data
tests (DialogSum, SAMSum, Multi30k) are skipped when the shared data folder is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from finetune.errors import UserError
from finetune.tasks.smoke_data import WORDS
from finetune.tasks.smoke_data import make_reversal_rows as reversal_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread

# Tuned locally: 400 steps reach BLEU 81-97 over tiny-model seeds 0, 1, 4 and 5 (300 steps: 56-82); 50 is the bar.
LEARNING = ["--max-steps", "400", "--learning-rate", "5e-3", "--batch-size", "32", "--max-new-tokens", "8",
            "--max-source-length", "32", "--max-target-length", "16", "--seed", "1", 'train.eval_strategy="no"',
            "train.logging_steps=100"]
FEW_STEPS = ["--max-steps", "3", "--batch-size", "4", "--max-new-tokens", "8", "--learning-rate", "1e-3",
             'train.eval_strategy="no"']


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def invoke(args: list) -> object:
    """The CLI in-process (for module-scoped fixtures, which cannot use the function-scoped `cli` fixture)."""
    from typer.testing import CliRunner

    from finetune.cli import app

    result = CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def reversal(tmp_path_factory) -> dict[str, Path]:
    from tests.builders import build_tiny_t5

    work = tmp_path_factory.mktemp("reversal")
    train = write_jsonl(work / "train.jsonl", reversal_rows(1000, seed=0))
    validation = write_jsonl(work / "validation.jsonl", reversal_rows(100, seed=1))
    model = build_tiny_t5(work / "tiny-t5", [" ".join(WORDS), "translate English to German:"] * 20, vocab_size=200)
    return {"work": work, "train": train, "validation": validation, "model": model}


def translate_args(reversal: dict[str, Path], output_dir: Path) -> list:
    return ["translate", "--model", reversal["model"], "--train-file", reversal["train"],
            "--validation-file", reversal["validation"], "--source-lang", "en", "--target-lang", "de",
            "--output-dir", output_dir]


@pytest.fixture(scope="module")
def reversal_run(reversal) -> Path:
    run_dir = reversal["work"] / "trained"
    invoke([*translate_args(reversal, run_dir), *LEARNING])
    return run_dir


# ---- learning --------------------------------------------------------------------------------------------------


def test_tiny_t5_learns_to_reverse_words_through_the_cli(reversal, reversal_run):
    untrained_dir = reversal["work"] / "one-step"
    invoke([*translate_args(reversal, untrained_dir), *LEARNING, "--max-steps", "1"])
    before = json.loads((untrained_dir / "metrics.json").read_text())["eval_bleu"]
    after = json.loads((reversal_run / "metrics.json").read_text())
    assert before < 5, before
    assert after["eval_bleu"] >= 50, after
    assert {"eval_chrf", "eval_gen_len", "eval_loss"} <= set(after)
    assert 3 <= after["eval_gen_len"] <= 8  # 3-5 words and end-of-sequence


def test_trained_model_scores_and_predictions_do_not_depend_on_the_batch_size(reversal, reversal_run, tmp_path):
    """On a model that learned (BLEU well above 0), every row's prediction and every score is the same whatever
    the evaluation batch size: padding is masked and generation batches line up."""
    results: dict[int, tuple[dict, list]] = {}
    for batch_size in (1, 7, 64):
        output = tmp_path / f"batch-{batch_size}"
        invoke(["evaluate", reversal_run, "--batch-size", batch_size, "--output-dir", output])
        (document,) = [json.loads(path.read_text()) for path in output.glob("*/results_*.json")]
        (scores,) = document["results"].values()
        predictions = [row["prediction"] for row in read_jsonl(next(output.glob("*/samples_*.jsonl")))]
        results[batch_size] = scores, predictions
    scores, predictions = results[1]
    assert scores["bleu,none"] >= 50 and len(predictions) == 100
    assert 0 < scores["bleu_stderr,none"] < 20 and scores["loss_stderr,none"] == "N/A"  # bootstrap over the rows
    for other_scores, other_predictions in (results[7], results[64]):
        assert other_predictions == predictions
        for name in ("bleu,none", "chrf,none", "gen_len,none"):
            assert other_scores[name] == scores[name], name
        assert other_scores["loss,none"] == pytest.approx(scores["loss,none"], rel=1e-5)


def test_run_directory_has_predictions_in_file_order(reversal, reversal_run):
    rows = read_jsonl(reversal["validation"])
    predictions = read_jsonl(reversal_run / "predictions.jsonl")
    # Evaluation ran longest-first; the file is back in the validation file's order.
    assert [record["source"] for record in predictions] == [row["en"] for row in rows]
    assert [record["reference"] for record in predictions] == [row["de"] for row in rows]
    assert all(set(record) == {"source", "reference", "prediction"} for record in predictions)
    assert (reversal_run / "predictions" / "validation.jsonl").read_text() == \
        (reversal_run / "predictions.jsonl").read_text()
    assert {"config.json", "generation_config.json", "model.safetensors", "recipe.yaml", "metrics.json"} <= \
        {path.name for path in reversal_run.iterdir()}


def test_final_scores_equal_sacrebleu_on_the_written_predictions(reversal_run):
    import sacrebleu

    records = read_jsonl(reversal_run / "predictions.jsonl")
    metrics = json.loads((reversal_run / "metrics.json").read_text())
    hypotheses, references = [r["prediction"] for r in records], [[r["reference"] for r in records]]
    assert metrics["eval_bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, references).score, abs=1e-9)
    assert metrics["eval_chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, references).score, abs=1e-9)


def test_recipe_records_the_t5_prefix_and_generation_settings(reversal_run):
    recipe = yaml.safe_load((reversal_run / "recipe.yaml").read_text())
    assert recipe["task"] == "translation"
    assert recipe["data"]["source_prefix"] == "translate English to German: "
    generation = json.loads((reversal_run / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 8 and generation.get("max_length") is None  # as the recipe said it
    assert generation.get("num_beams", 1) == 1
    config = json.loads((reversal_run / "config.json").read_text())
    assert config["task_specific_params"]["translation"] == {"prefix": "translate English to German: "}


def test_a_bare_model_folder_predicts_with_the_prefix_it_was_trained_with(cli, reversal_run, tmp_path):
    """No recipe.yaml anywhere (an exported or downloaded model): the prefix comes from the model's config."""
    shutil.copytree(reversal_run, tmp_path / "model", ignore=shutil.ignore_patterns("recipe.yaml", "predictions*"))
    texts = ["--text", "red cat dog", "--text", "sun moon tree fish"]
    with_recipe = cli(["predict", reversal_run, *texts])
    bare = cli(["predict", tmp_path / "model", *texts])
    assert bare.exit_code == 0, bare.output
    assert bare.output == with_recipe.output and bare.output.strip()


def test_translation_card_names_the_languages_and_its_snippet_keeps_the_prefix(reversal_run):
    from tests.helpers import checked_model_card

    card = checked_model_card(reversal_run)  # the snippet runs with plain transformers
    assert card.data.language == ["en", "de"] and card.data.pipeline_tag == "translation"
    assert card.data.datasets is None  # local files: described in words, never as a path
    assert "translate English to German: Your text here." in card.text and "AutoModelForSeq2SeqLM" in card.text


def test_predict_generates_for_a_seq2seq_run(cli, reversal_run):
    result = cli(["predict", reversal_run, "--text", "red cat dog", "--text", "sun moon tree fish", "--json"])
    assert result.exit_code == 0, result.output
    outputs = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [item["input"] for item in outputs] == ["red cat dog", "sun moon tree fish"]
    assert all(item["output"].strip() for item in outputs)
    beam = cli(["predict", reversal_run, "--text", "red cat dog", "--num-beams", "2"])
    assert beam.exit_code == 0 and beam.output.strip(), beam.output


def test_predict_from_a_checkpoint_uses_the_parent_recipe(reversal_run, tmp_path):
    from finetune.tasks.base import PredictRequest
    from finetune.tasks.predict import predict

    # A checkpoint-N folder holds model and tokenizer but no recipe.yaml; the run's own recipe applies.
    checkpoint = tmp_path / "run" / "checkpoint-300"
    shutil.copytree(reversal_run, checkpoint, ignore=shutil.ignore_patterns("recipe.yaml", "predictions*"))
    shutil.copy(reversal_run / "recipe.yaml", tmp_path / "run")
    _, records = predict(checkpoint, PredictRequest([("red cat dog", None)], {"max_new_tokens": 4}))
    outputs = [record["output"] for record in records]
    assert len(outputs) == 1 and 1 <= len(outputs[0].split()) <= 4


# ---- preprocessing ---------------------------------------------------------------------------------------------


def _task(recipe_flags: dict, splits: dict):
    """A Seq2SeqTask set up on in-memory splits ({"train": rows, "validation": rows})."""
    import datasets

    from finetune.config.loading import load_recipe
    from finetune.data.sources import LoadedData
    from finetune.tasks import get_task

    task_name = recipe_flags.pop("task")
    recipe = load_recipe(base={"task": task_name}, flags=recipe_flags)
    loaded = {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    data = LoadedData(train=loaded.pop("train", None), eval=loaded, source="memory")
    task = get_task(recipe)
    task.setup(data)
    return task, data


def test_tokenize_applies_prefix_and_pads_labels_with_minus_100(reversal):
    rows = reversal_rows(6, seed=3)
    task, data = _task({"task": "translation", "model": {"name": str(reversal["model"])},
                        "data": {"source_lang": "en", "target_lang": "de"}}, {"train": rows})
    model, tokenizer = task.load_model()
    tokenized = task.tokenize(data.train, tokenizer)
    assert tokenizer.decode(tokenized[0]["input_ids"], skip_special_tokens=True) == \
        "translate English to German: " + rows[0]["en"]
    assert tokenizer.decode(tokenized[0]["labels"], skip_special_tokens=True) == rows[0]["de"]
    assert tokenized[0]["labels"][-1] == tokenizer.eos_token_id
    batch = task.data_collator(tokenizer)([tokenized[i] for i in range(len(tokenized))])
    lengths = [len(tokenized[i]["labels"]) for i in range(len(tokenized))]
    assert min(lengths) < max(lengths)  # so the batch really is padded
    for row, length in zip(batch["labels"].tolist(), lengths):
        assert row[length:] == [-100] * (max(lengths) - length)
        assert -100 not in row[:length]
    # Teacher forcing: decoder inputs are the labels shifted right behind T5's start token (the pad token).
    assert batch["decoder_input_ids"][:, 0].tolist() == [model.config.decoder_start_token_id] * len(rows)
    assert task.main_metric == "bleu"


def test_explicit_empty_prefix_and_bart_get_no_prefix(reversal, tmp_path):
    from finetune.tasks.seq2seq_generation import default_source_prefix, language_name

    task, _ = _task({"task": "translation", "model": {"name": str(reversal["model"])},
                     "data": {"source_lang": "en", "target_lang": "de", "source_prefix": ""}},
                    {"train": reversal_rows(2, seed=0)})
    assert task.recipe.data.source_prefix == ""
    assert default_source_prefix("summarization", "t5", None, None) == "summarize: "
    assert default_source_prefix("translation", "mt5", "en", "ro") == "translate English to Romanian: "
    assert default_source_prefix("translation", "bart", "en", "de") == ""
    assert default_source_prefix("summarization", "marian", None, None) == ""
    assert language_name("de_DE") == "German" and language_name("xx") == "xx"


def test_summarization_column_defaults_and_multiple_references(reversal):
    model = {"name": str(reversal["model"])}
    samsum_local = [{"context": "A: hi\nB: hello", "response": "A greets B."}]
    task, _ = _task({"task": "summarization", "model": model}, {"train": samsum_local})
    assert (task.source_column, task.target_column) == ("context", "response")
    assert task.recipe.data.source_prefix == "summarize: " and task.main_metric == "rougeL"

    dialogsum_test = [{"dialogue": "A: hi", "summary1": "one", "summary2": "two", "summary3": "three"}]
    task, data = _task({"task": "summarization", "model": model, "data": {"dataset": "knkarthick/dialogsum"}},
                       {"train": [{"dialogue": "A: hi", "summary": "s"}], "test": dialogsum_test})
    assert (task.source_column, task.target_column) == ("dialogue", "summary")
    test_split = data.eval["test"]
    assert task._raw_references(test_split.to_dict(), test_split.column_names) == [["one", "two", "three"]]

    with pytest.raises(UserError, match="Columns: body, tldr. Pass --source-column and --target-column"):
        _task({"task": "summarization", "model": model}, {"train": [{"body": "x", "tldr": "y"}]})
    task, _ = _task({"task": "summarization", "model": model,
                     "data": {"source_column": "body", "target_column": "tldr"}},
                    {"train": [{"body": "x", "tldr": "y"}]})
    assert task.source_column == "body"


def test_translation_reads_hub_style_rows(reversal):
    rows = [{"translation": {"en": row["en"], "de": row["de"]}} for row in reversal_rows(4, seed=5)]
    task, data = _task({"task": "translation", "model": {"name": str(reversal["model"])},
                        "data": {"source_lang": "en", "target_lang": "de"}}, {"train": rows, "validation": rows})
    assert (task.source_column, task.target_column) == ("translation.en", "translation.de")
    _, tokenizer = task.load_model()
    tokenized = task.tokenize(data.train, tokenizer)
    assert tokenizer.decode(tokenized[0]["labels"], skip_special_tokens=True) == rows[0]["translation"]["de"]
    with pytest.raises(UserError, match="--source-lang and --target-lang"):
        _task({"task": "translation", "model": {"name": str(reversal["model"])}}, {"train": rows})


def test_line_aligned_text_files(tmp_path):
    from finetune.config.schema import DataSection
    from finetune.data.sources import load_data

    (tmp_path / "train.en").write_text("a cat\nthe dog\n", encoding="utf-8")
    (tmp_path / "train.de").write_text("eine Katze\nder Hund\n", encoding="utf-8")
    (tmp_path / "val.en").write_text("a bird\n", encoding="utf-8")
    (tmp_path / "val.de").write_text("ein Vogel\n", encoding="utf-8")
    for train_file in (tmp_path / "train", tmp_path / "train.en", tmp_path / "train.de"):
        loaded = load_data(DataSection(train_file=str(train_file), validation_file=str(tmp_path / "val"),
                                       source_lang="en", target_lang="de"))
        assert loaded.train.to_list() == [{"en": "a cat", "de": "eine Katze"}, {"en": "the dog", "de": "der Hund"}]
        assert loaded.eval["validation"].to_list() == [{"en": "a bird", "de": "ein Vogel"}]
    folder = load_data(DataSection(dataset=str(tmp_path), source_lang="en", target_lang="de"))
    assert len(folder.train) == 2 and len(folder.eval["validation"]) == 1

    (tmp_path / "bad.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "bad.de").write_text("eins\n", encoding="utf-8")
    with pytest.raises(UserError, match="has 2 lines but .* has 1"):
        load_data(DataSection(train_file=str(tmp_path / "bad"), source_lang="en", target_lang="de"))
    (tmp_path / "half.en").write_text("one\n", encoding="utf-8")
    with pytest.raises(UserError, match="half.de not found"):
        load_data(DataSection(train_file=str(tmp_path / "half"), source_lang="en", target_lang="de"))


# ---- metrics equal the reference libraries ---------------------------------------------------------------------

PREDICTIONS = ["The cat sat on the mat. It was happy.", "A dog runs in the park", "Nothing matches here"]
SINGLE = ["The cat sat on a mat. It looked happy.", "The dog is running through the park.", "A bird sings"]
MULTI = [["A cat sat on the mat.", "The cat was sitting. It was happy."], ["The dog runs in a park"],
         ["Birds sing.", "A bird is singing", "Nothing here"]]


def test_rouge_equals_rouge_score_with_best_reference():
    from rouge_score import rouge_scorer

    from finetune.tasks import metrics

    kinds = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(kinds, use_stemmer=True)

    def lines(text: str) -> str:  # Lsum wants one sentence per line; these sentences end in ". "
        return text.replace(". ", ".\n")

    for references in (SINGLE, MULTI):
        expected = dict.fromkeys(kinds, 0.0)
        for prediction, reference in zip(PREDICTIONS, references):
            refs = [reference] if isinstance(reference, str) else reference
            for kind in kinds:
                expected[kind] += max(scorer.score(lines(ref), lines(prediction))[kind].fmeasure for ref in refs)
        ours = metrics.load("rouge").compute(predictions=PREDICTIONS, references=references)
        for kind in kinds:
            assert ours[kind] == pytest.approx(100 * expected[kind] / len(PREDICTIONS), abs=1e-9), kind


def test_bleu_and_chrf_equal_sacrebleu_single_and_multi_reference():
    import sacrebleu

    from finetune.tasks import metrics

    assert metrics.compute(["bleu", "chrf"], PREDICTIONS, SINGLE) == pytest.approx({
        "bleu": sacrebleu.corpus_bleu(PREDICTIONS, [SINGLE]).score,
        "chrf": sacrebleu.corpus_chrf(PREDICTIONS, [SINGLE]).score})
    # sacrebleu takes a variable number of references per example as None-padded streams.
    width = max(len(refs) for refs in MULTI)
    streams = [[refs[i] if i < len(refs) else None for refs in MULTI] for i in range(width)]
    assert metrics.compute(["bleu", "chrf"], PREDICTIONS, MULTI) == pytest.approx({
        "bleu": sacrebleu.corpus_bleu(PREDICTIONS, streams).score,
        "chrf": sacrebleu.corpus_chrf(PREDICTIONS, streams).score})


def test_generated_length_counts_tokens_after_the_start_token():
    import numpy as np

    from finetune.tasks.seq2seq_generation import clean_ids, generated_length

    generated = clean_ids(np.array([[0, 5, 6, 1, 0], [0, 7, 1, -100, -100]]), pad_token_id=0)
    assert generated_length(generated, pad_token_id=0) == pytest.approx((3 + 2) / 2)


# ---- tiny BART end to end --------------------------------------------------------------------------------------


def test_tiny_bart_summarizes_end_to_end_and_predicts(cli, tmp_path):
    from tests.builders import build_tiny_bart

    documents = [{"document": f"{row['en']} . {row['de']} .", "summary": row["en"]} for row in reversal_rows(24, 7)]
    train = write_jsonl(tmp_path / "train.jsonl", documents[:16])
    validation = write_jsonl(tmp_path / "validation.jsonl", documents[16:])
    model = build_tiny_bart(tmp_path / "tiny-bart", [row["document"] for row in documents], vocab_size=300)
    run_dir = tmp_path / "run"
    result = cli(["summarize", "--model", model, "--train-file", train, "--validation-file", validation,
                  "--output-dir", run_dir, "--num-beams", "2", *FEW_STEPS])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rougeLsum", "eval_bleu", "eval_chrf",
            "eval_gen_len"} <= set(metrics)
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["data"]["source_prefix"] == ""  # BART: none
    assert len(read_jsonl(run_dir / "predictions.jsonl")) == 8
    predicted = cli(["predict", run_dir, "--text", "red cat dog . dog cat red ."])
    assert predicted.exit_code == 0 and predicted.output.strip(), predicted.output


# ---- real data (skipped without ../shared/data) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_t5(tmp_path_factory, data_dir) -> Path:
    """A tiny T5 whose tokenizer knows some English, German and dialogue text from the data folder."""
    from tests.builders import build_tiny_t5

    texts = []
    for name in ("translation/multi30k/train.en", "translation/multi30k/train.de"):
        texts += (data_dir / name).read_text(encoding="utf-8").splitlines()[:300]
    for row in read_jsonl(data_dir / "summarization/dialogsum/validation.jsonl")[:50]:
        texts += [row["dialogue"], row["summary"]]
    return build_tiny_t5(tmp_path_factory.mktemp("models") / "tiny-t5-real", texts, vocab_size=1000)


def test_multi30k_line_aligned_files_train_and_score(cli, data_dir, real_t5, tmp_path):
    multi30k = data_dir / "translation" / "multi30k"
    run_dir = tmp_path / "run"
    result = cli(["translate", "--model", real_t5, "--train-file", multi30k / "train",
                  "--validation-file", multi30k / "val", "--source-lang", "en", "--target-lang", "de",
                  "--max-train-samples", "64", "--max-eval-samples", "16", "--output-dir", run_dir, *FEW_STEPS])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "eval_bleu" in metrics and "eval_chrf" in metrics and metrics["eval_samples"] == {"validation": 16}
    predictions = read_jsonl(run_dir / "predictions.jsonl")
    first_en = (multi30k / "val.en").read_text(encoding="utf-8").splitlines()[0]
    first_de = (multi30k / "val.de").read_text(encoding="utf-8").splitlines()[0]
    assert predictions[0]["source"] == first_en and predictions[0]["reference"] == first_de


def test_dialogsum_with_three_references(cli, data_dir, real_t5, tmp_path):
    from rouge_score import rouge_scorer

    from finetune.tasks.metrics import split_sentences

    dialogsum = data_dir / "summarization" / "dialogsum"
    run_dir = tmp_path / "run"
    # Validation stands in for training; test has three references per dialogue (summary1..3).
    result = cli(["summarize", "--model", real_t5, "--train-file", dialogsum / "validation.jsonl",
                  "--validation-file", dialogsum / "test.jsonl",
                  "--max-train-samples", "32", "--max-eval-samples", "8", "--max-source-length", "128",
                  "--output-dir", run_dir, *FEW_STEPS])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rougeLsum", "eval_bleu", "eval_chrf"} <= set(metrics)
    records = read_jsonl(run_dir / "predictions.jsonl")
    assert len(records) == 8 and all(len(record["references"]) == 3 for record in records)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = sum(max(scorer.score(split_sentences(ref), split_sentences(r["prediction"]))["rougeL"].fmeasure
                       for ref in r["references"]) for r in records) / len(records)
    assert metrics["eval_rougeL"] == pytest.approx(100 * expected, abs=1e-9)


def test_samsum_local_jsonl_columns(cli, data_dir, real_t5, tmp_path):
    samsum = data_dir / "summarization" / "samsum"
    run_dir = tmp_path / "run"
    result = cli(["summarize", "--model", real_t5, "--train-file", samsum / "validation.jsonl",
                  "--validation-file", samsum / "test.jsonl", "--max-train-samples", "32",
                  "--max-eval-samples", "8", "--max-source-length", "128", "--output-dir", run_dir, *FEW_STEPS])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "eval_rougeL" in metrics and "eval_bleu" in metrics
    first = read_jsonl(samsum / "test.jsonl")[0]
    assert read_jsonl(run_dir / "predictions.jsonl")[0]["reference"] == first["response"]


# ---- shipped recipes -------------------------------------------------------------------------------------------


def test_shipped_seq2seq_recipes_validate_and_open_with_their_command(cli):
    from finetune.config.loading import shipped_recipes_dir

    files = sorted(shipped_recipes_dir().glob("summarization/*.yaml")) + \
        sorted(shipped_recipes_dir().glob("translation/*.yaml"))
    names = {f"{path.parent.name}/{path.stem}" for path in files}
    assert {"summarization/cnn_dailymail-t5-small", "summarization/xsum-t5-small", "summarization/samsum-t5-small",
            "summarization/dialogsum-t5-small", "translation/wmt16-ro-en-t5-small",
            "translation/multi30k-en-de-t5-small"} <= names
    result = cli(["recipes", "validate", *files])
    assert result.exit_code == 0, result.output
    for path in files:
        assert path.read_text(encoding="utf-8").startswith(f"# finetune train recipes/{path.parent.name}/{path.name}")
