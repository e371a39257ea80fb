"""`finetune evaluate`: runs reproduce their own scores, scores ignore the batch size, labels match by name, suites
add up as GLUE does, and the results, leaderboard and by-step files are written."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest

from tests.conftest import requires_data
from tests.helpers import invoke, write_csv, write_jsonl

FAST = ["--learning-rate", "3e-3", "--batch-size", "16", "--max-length", "32"]


def evaluate(cli, *args, output_dir: Path):
    result = cli(["evaluate", *args, "--output-dir", output_dir])
    assert result.exit_code == 0, result.output
    return result


def results_of(path: Path) -> dict:
    """{task: {metric: value}} of a results file (standard errors left out: stderr_of)."""
    document = json.loads(path.read_text())
    return {key: {name.split(",")[0]: value for name, value in entry.items()
                  if name != "alias" and "_stderr," not in name} for key, entry in document["results"].items()}


def stderr_of(path: Path) -> dict:
    document = json.loads(path.read_text())
    return {key: {name.split("_stderr,")[0]: value for name, value in entry.items() if "_stderr," in name}
            for key, entry in document["results"].items()}


def result_file(output_dir: Path, benchmark: str, model: str = "run") -> Path:
    """OUTPUT_DIR/<model slug>/results_<time>.json of `benchmark`; the slug of a path outside the working directory
    is its last two names (.../evaluate-sentiment0/run -> evaluate-sentiment0__run)."""
    found = [path for path in output_dir.glob("*/results_*.json") if path.parent.name.endswith(model)
             and json.loads(path.read_text())["config"]["benchmark"] == benchmark]
    assert len(found) == 1, found
    return found[0]


def samples_of(results: Path, task: str) -> list[dict]:
    """The samples_<task>_<time>.jsonl written with a results_<time>.json."""
    stamp = results.stem.removeprefix("results_")
    return [json.loads(line) for line in (results.parent / f"samples_{task}_{stamp}.jsonl").read_text().splitlines()]


def assert_same_scores(first: dict, second: dict, exact: tuple[str, ...]) -> None:
    """Metrics in `exact` equal to the last bit; losses and perplexities to 1e-6 relative."""
    assert first.keys() == second.keys()
    for name, value in first.items():
        if name in exact:
            assert second[name] == value, name
        else:
            assert math.isclose(second[name], value, rel_tol=1e-6, abs_tol=1e-9), (name, value, second[name])


# ---- a classifier trained once for the module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory, tiny_bert, sentiment_rows):
    """75 steps, evaluated and saved every 25: a run with three checkpoints and a model that learned something."""
    train, validation = sentiment_rows
    work = tmp_path_factory.mktemp("evaluate-sentiment")
    run_dir = work / "run"
    result = invoke(["classify", "--model", tiny_bert, "--train-file", write_csv(work / "train.csv", train),
                     "--validation-file", write_csv(work / "validation.csv", validation), "--output-dir", run_dir,
                     "--max-steps", "75", *FAST, "train.eval_strategy=steps", "train.eval_steps=25",
                     "train.save_total_limit=3", "train.eval_batch_size=32"])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def permuted_model(sentiment_run, tmp_path_factory):
    """The same classifier with its labels stored the other way round (id 0 = positive): a plain model folder,
    no recipe.yaml, whose head rows are swapped to match."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(sentiment_run)
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight.flip(0))
        model.classifier.bias.copy_(model.classifier.bias.flip(0))
    model.config.id2label = {0: "positive", 1: "negative"}
    model.config.label2id = {"positive": 0, "negative": 1}
    folder = tmp_path_factory.mktemp("permuted") / "model"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(sentiment_run).save_pretrained(folder)
    return folder


def test_evaluating_a_run_reproduces_its_own_metrics(cli, sentiment_run, tmp_path):
    """Same data, same split, the run's own evaluation batch size: every number the run recorded, to the bit."""
    evaluate(cli, sentiment_run, "--batch-size", "32", output_dir=tmp_path)
    recorded = json.loads((sentiment_run / "metrics.json").read_text())
    scores = results_of(result_file(tmp_path, "validation"))["validation"]
    assert set(scores) == {"loss", "accuracy", "f1"}
    for name, value in scores.items():
        assert value == recorded[f"eval_{name}"], name
    assert scores["accuracy"] >= 0.8  # chance is 0.5: the model learned, so its predictions are not constant
    recorded_rows = [json.loads(line) for line in (sentiment_run / "predictions" / "validation.jsonl").read_text()
                     .splitlines()]
    samples = samples_of(result_file(tmp_path, "validation"), "validation")
    assert [{key: sample[key] for key in recorded_rows[0]} for sample in samples] == recorded_rows


def test_classification_scores_do_not_depend_on_the_batch_size(cli, sentiment_run, tmp_path):
    scores = []
    for batch_size in (1, 7, 64):
        evaluate(cli, sentiment_run, "--batch-size", batch_size, output_dir=tmp_path / str(batch_size))
        scores.append(results_of(result_file(tmp_path / str(batch_size), "validation"))["validation"])
    for other in scores[1:]:
        assert_same_scores(scores[0], other, exact=("accuracy", "f1"))
    labels = [[sample["prediction"] for sample in samples_of(result_file(tmp_path / str(b), "validation"),
                                                              "validation")] for b in (1, 64)]
    assert labels[0] == labels[1]


def test_labels_are_matched_by_name(cli, sentiment_run, permuted_model, tmp_path):
    """A checkpoint whose label ids run the other way scores exactly as the original; it has no recipe.yaml, so
    the task comes from its architecture and the data from --dataset."""
    validation = sentiment_run.parent / "validation.csv"
    evaluate(cli, sentiment_run, permuted_model, "--dataset", validation, "--set", "data.max_length=32",
             output_dir=tmp_path)
    original = results_of(result_file(tmp_path, "validation"))["validation"]
    permuted_file = result_file(tmp_path, "validation", "model")
    permuted = results_of(permuted_file)["validation"]
    assert_same_scores(original, permuted, exact=("accuracy", "f1"))
    document = json.loads(permuted_file.read_text())
    assert document["configs"]["validation"]["settings"]["label_mapping"].startswith("by name")
    predictions = [sample["prediction"] for sample in samples_of(permuted_file, "validation")]
    assert set(predictions) <= {"positive", "negative"} and len(set(predictions)) == 2


def test_a_label_missing_from_the_checkpoint_is_a_clear_error(cli, sentiment_run, tmp_path):
    rows = [{"text": "a film", "label": "neutral"}, {"text": "great fun", "label": "positive"}]
    result = cli(["evaluate", sentiment_run, "--dataset", write_csv(tmp_path / "three.csv", rows),
                  "--output-dir", tmp_path / "results"])
    assert result.exit_code == 2
    assert "neutral" in result.output and "not one of the labels" in result.output


def test_leaderboard_and_results_layout(cli, sentiment_run, tmp_path):
    result = evaluate(cli, sentiment_run, sentiment_run / "checkpoint-25", "--limit", "60", output_dir=tmp_path)
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2  # header, rule, two checkpoints
    document = json.loads((result_file(tmp_path, "validation")).read_text())
    layout = {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date"}
    assert layout <= set(document)
    assert document["results"]["validation"]["accuracy,none"] == results_of(result_file(tmp_path, "validation"))[
        "validation"]["accuracy"]
    assert document["n-samples"]["validation"] == {"original": 120, "effective": 60}
    config = document["config"]
    assert config["batch_size"] == 32 and config["dtype"] == "float32" and config["padding_side"] == "right"
    assert config["limit"] == 60 and config["max_length"] == 32
    assert document["configs"]["validation"]["fingerprint"].startswith("sha256:")
    assert document["library_versions"]["transformers"].startswith("5.")
    with (tmp_path / "leaderboard-validation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["rank"] for row in rows] == ["1", "2"]
    assert float(rows[0]["accuracy"]) >= float(rows[1]["accuracy"])
    assert {row["model"] for row in rows} == {str(sentiment_run), str(sentiment_run / "checkpoint-25")}
    assert (tmp_path / "leaderboard-validation.md").read_text().count("\n|") >= 3
    # The same data scored twice gives the same fingerprint; another limit, another one.
    other = json.loads(result_file(tmp_path, "validation", "checkpoint-25").read_text())
    assert other["configs"]["validation"]["fingerprint"] == document["configs"]["validation"]["fingerprint"]


def test_results_and_samples_are_named_and_laid_out_as_lm_eval_writes_them(cli, sentiment_run, tmp_path):
    """lm-eval's file finders (get_results_filenames, get_file_task_name, get_file_datetime) find them; a re-run
    adds files; standard errors are bootstrapped; sample hashes add up to the task hash."""
    import hashlib
    import re

    with (sentiment_run.parent / "validation.csv").open() as handle:
        rows = list(csv.DictReader(handle))[:100]
    for row in rows[::3]:  # every third label flipped: the model is right about two thirds of the time
        row["label"] = {"positive": "negative", "negative": "positive"}[row["label"]]
    noisy = write_csv(tmp_path / "noisy.csv", rows)
    for _ in range(2):
        evaluate(cli, sentiment_run, "--dataset", noisy, output_dir=tmp_path / "results")
    (folder,) = [path for path in (tmp_path / "results").iterdir() if path.is_dir()]
    results = sorted(path.name for path in folder.glob("results_*.json"))
    samples = sorted(path.name for path in folder.glob("samples_*.jsonl"))
    assert len(results) == 2 and len(samples) == 2  # the second run wrote its own files
    for name in results + samples:
        stamp = name[name.rfind("_") + 1:].removesuffix(".jsonl").removesuffix(".json")  # get_file_datetime
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d+", stamp), name
    assert {name[name.find("_") + 1:name.rfind("_")] for name in samples} == {"noisy"}  # get_file_task_name

    path = folder / results[0]
    document = json.loads(path.read_text())
    scores = document["results"]["noisy"]
    accuracy = scores["accuracy,none"]
    assert 0.5 < accuracy < 0.8
    # The bootstrap standard error of a mean of 100 hits is close to the analytic one, sqrt(p (1 - p) / n).
    assert scores["accuracy_stderr,none"] == pytest.approx(math.sqrt(accuracy * (1 - accuracy) / 100), rel=0.2)
    assert 0 < scores["f1_stderr,none"] < 0.2
    assert scores["loss_stderr,none"] == "N/A"  # not computable from the predictions
    rows = samples_of(path, "noisy")
    assert len(rows) == 100 and [row["doc_id"] for row in rows] == list(range(100))
    first = rows[0]
    assert first["target"] == first["doc"]["label"] and first["resps"] == [[first["prediction"]]]
    assert first["filtered_resps"] == [first["prediction"]] and "prediction" not in first["doc"]
    digest = hashlib.sha256("".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in rows).encode())
    assert document["task_hashes"] == {"noisy": digest.hexdigest()}
    assert "git_hash" in document and document["config"]["benchmark"] == "noisy"
    hits = [row["prediction"] == row["target"] for row in rows]
    assert accuracy == sum(hits) / len(hits)


def test_all_checkpoints_writes_a_table_and_plot_by_step(cli, sentiment_run, tmp_path):
    result = evaluate(cli, sentiment_run, "--all-checkpoints", "--limit", "40", output_dir=tmp_path)
    steps = next(tmp_path.glob("*run/validation-steps.csv"))
    with steps.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows] == ["25", "50", "75"]
    assert {"accuracy", "f1", "loss"} <= set(rows[0])
    png = steps.with_name("validation-steps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "by step" in result.stdout


def test_a_causal_lm_asked_for_glue_classification_is_a_clear_error(cli, tmp_path):
    from tests.builders import build_tiny_gpt2

    model = build_tiny_gpt2(tmp_path / "gpt2", ["the cat sat on the mat"] * 20)
    result = cli(["evaluate", model, "--benchmark", "glue/sst2", "--output-dir", tmp_path / "results"])
    assert result.exit_code == 2
    assert "generation checkpoint" in result.output and "classification" in result.output


def test_a_model_folder_without_recipe_needs_a_benchmark(cli, permuted_model, tmp_path):
    result = cli(["evaluate", permuted_model, "--output-dir", tmp_path])
    assert result.exit_code == 2
    assert "no recipe.yaml" in result.output and "--benchmark" in result.output


def test_a_lora_adapter_run_reproduces_its_metrics(cli, tiny_bert, sentiment_run, tmp_path):
    """An adapter run (adapter weights + the base model's config): base model and adapter are rebuilt."""
    pytest.importorskip("peft")
    work = sentiment_run.parent
    run_dir = tmp_path / "lora"
    trained = invoke(["classify", "--model", tiny_bert, "--train-file", work / "train.csv", "--validation-file",
                      work / "validation.csv", "--max-steps", "10", *FAST, "--lora", "--output-dir", run_dir])
    assert trained.exit_code == 0, trained.output
    assert (run_dir / "adapter_config.json").is_file()
    evaluate(cli, run_dir, output_dir=tmp_path / "results")
    recorded = json.loads((run_dir / "metrics.json").read_text())
    scores = results_of(result_file(tmp_path / "results", "validation", "lora"))["validation"]
    assert scores["accuracy"] == recorded["eval_accuracy"] and scores["f1"] == recorded["eval_f1"]
    assert math.isclose(scores["loss"], recorded["eval_loss"], rel_tol=1e-6)


# ---- suites and the GLUE score ---------------------------------------------------------------------------------


def test_glue_score_arithmetic_on_the_leaderboards_bert_large_row():
    """GLUE leaderboard, BERT-large: per-task score = mean of its metrics, MNLI m/mm count as one task; 80.5."""
    from finetune.eval.suites import resolve_benchmark, suite_score, task_score

    glue = resolve_benchmark("glue")
    row = {"cola": [{"matthews_correlation": 60.5}], "sst2": [{"accuracy": 94.9}],
           "mrpc": [{"f1": 89.3, "accuracy": 85.4}], "stsb": [{"pearson": 87.6, "spearmanr": 86.5}],
           "qqp": [{"f1": 72.1, "accuracy": 89.3}], "mnli": [{"accuracy": 86.7}, {"accuracy": 85.9}],
           "qnli": [{"accuracy": 92.7}], "rte": [{"accuracy": 70.1}], "wnli": [{"accuracy": 65.1}]}
    scores = {task: task_score(splits, glue.tasks[task].metrics) for task, splits in row.items()}
    assert scores["mrpc"] == pytest.approx(87.35) and scores["mnli"] == pytest.approx(86.3)
    score = suite_score(scores, list(glue.tasks))
    assert score == pytest.approx(724.7 / 9) and round(score, 1) == 80.5
    assert suite_score({k: v for k, v in scores.items() if k != "wnli"}, list(glue.tasks)) is None
    assert glue.scale == 100 and glue.score_name == "glue_score"


def test_glue_suite_lists_the_nine_tasks_with_the_official_metrics():
    from finetune.data.glue import GLUE_TASKS
    from finetune.eval.suites import resolve_benchmark
    from finetune.tasks import family_of_dataset

    glue = resolve_benchmark("glue")
    assert set(glue.tasks) == set(GLUE_TASKS) - {"ax"}
    for name, spec in glue.tasks.items():
        assert tuple(spec.metrics) == GLUE_TASKS[name].metrics or set(spec.metrics) == set(GLUE_TASKS[name].metrics)
        assert spec.dataset == f"glue/{name}" and family_of_dataset(spec.dataset).name == "classification"


def test_a_suite_file_scores_each_task_with_its_checkpoint(cli, sentiment_run, sentiment_rows, tmp_path):
    """A custom two-task suite from a YAML file, TASK=CHECKPOINT pairs, and its suite score."""
    _, validation = sentiment_rows
    other = write_csv(tmp_path / "other.csv", list(reversed(validation))[:50])
    suite = tmp_path / "sentiment.yaml"
    movies_file = sentiment_run.parent / "validation.csv"
    suite.write_text(f"name: sentiment\nscore_name: sentiment_score\nscale: 100\ntasks:\n"
                     f"  movies: {{validation_file: {movies_file}, metrics: [accuracy, f1]}}\n"
                     f"  more: {{validation_file: {other}}}\n")
    result = evaluate(cli, "--benchmark", suite, f"movies={sentiment_run}", f"more={sentiment_run / 'checkpoint-25'}",
                      output_dir=tmp_path / "results")
    document = json.loads(next((tmp_path / "results").glob("*/results_*.json")).read_text())
    movies, more = document["results"]["movies"], document["results"]["more"]
    expected = 100 * ((movies["accuracy,none"] + movies["f1,none"]) / 2 + more["accuracy,none"]) / 2
    assert document["groups"]["sentiment"]["sentiment_score,none"] == pytest.approx(expected)
    assert f"sentiment_score: {expected:.2f}" in result.stdout
    assert document["config"]["checkpoints"] == {"movies": str(sentiment_run),
                                                 "more": str(sentiment_run / "checkpoint-25")}


# ---- real GLUE data --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glue_checkpoints(tmp_path_factory, tiny_bert):
    """Untrained classifiers for the nine GLUE tasks, one folder each (runs/glue-<task> style): the scores are
    chance, the arithmetic and the plumbing are what is tested."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finetune.data.glue import GLUE_TASKS

    folder = tmp_path_factory.mktemp("glue-runs")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    for index, task in enumerate(name for name in GLUE_TASKS if name != "ax"):
        glue = GLUE_TASKS[task]
        torch.manual_seed(index)
        if glue.is_regression:
            model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1,
                                                                       problem_type="regression")
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                tiny_bert, num_labels=glue.num_labels, id2label=dict(enumerate(glue.label_names)),
                label2id={name: i for i, name in enumerate(glue.label_names)})
        model.save_pretrained(folder / f"glue-{task}")
        tokenizer.save_pretrained(folder / f"glue-{task}")
    return folder


@requires_data
def test_glue_suite_prints_the_glue_score(cli, glue_checkpoints, data_dir, tmp_path):
    result = evaluate(cli, glue_checkpoints, "--benchmark", "glue", "--data-dir", data_dir, "--limit", "24",
                      output_dir=tmp_path)
    document = json.loads(next(tmp_path.glob("*/results_*.json")).read_text())
    assert set(document["results"]) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli_matched", "mnli_mismatched",
                                        "qnli", "rte", "wnli"}
    results = {key: {name.split(",")[0]: value for name, value in entry.items() if name != "alias"}
               for key, entry in document["results"].items()}
    per_task = {"cola": results["cola"]["matthews_correlation"], "sst2": results["sst2"]["accuracy"],
                "mrpc": (results["mrpc"]["f1"] + results["mrpc"]["accuracy"]) / 2,
                "qqp": (results["qqp"]["f1"] + results["qqp"]["accuracy"]) / 2,
                "stsb": (results["stsb"]["pearson"] + results["stsb"]["spearmanr"]) / 2,
                "mnli": (results["mnli_matched"]["accuracy"] + results["mnli_mismatched"]["accuracy"]) / 2,
                "qnli": results["qnli"]["accuracy"], "rte": results["rte"]["accuracy"],
                "wnli": results["wnli"]["accuracy"]}
    expected = 100 * sum(per_task.values()) / 9
    assert document["groups"]["glue"]["glue_score,none"] == pytest.approx(expected)
    assert f"glue_score: {expected:.2f}" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("| task"))
    assert header.count("| accuracy ") == 1 and "matthews_correlation" in header and "spearmanr" in header
    assert document["n-samples"]["qqp"]["effective"] == 9 and document["n-samples"]["sst2"]["effective"] == 24


@requires_data
def test_two_runs_on_glue_sst2_give_a_two_row_leaderboard(cli, tiny_bert, data_dir, tmp_path):
    """The issue's done-when, on a tiny run and its own checkpoint, plus a label-permuted copy on GLUE data."""
    import torch
    from transformers import AutoModelForSequenceClassification

    run_dir = tmp_path / "runs" / "a"
    trained = invoke(["classify", "--model", tiny_bert, "--dataset", "glue/sst2", "--data-dir", data_dir,
                      "--max-train-samples", "64", "--max-eval-samples", "32", "--max-steps", "4", *FAST,
                      "--output-dir", run_dir, "train.eval_strategy=steps", "train.eval_steps=2"])
    assert trained.exit_code == 0, trained.output
    result = evaluate(cli, run_dir, run_dir / "checkpoint-2", "--benchmark", "glue/sst2", "--limit", "100",
                      output_dir=tmp_path / "results")  # --data-dir comes from the run's recipe
    assert len([line for line in result.stdout.splitlines() if line.startswith("|")]) == 4
    assert (tmp_path / "results" / "leaderboard-glue-sst2.md").is_file()
    scores = results_of(result_file(tmp_path / "results", "glue/sst2", "a"))["sst2"]

    model = AutoModelForSequenceClassification.from_pretrained(run_dir)
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight.flip(0))
        model.classifier.bias.copy_(model.classifier.bias.flip(0))
    model.config.id2label, model.config.label2id = {0: "positive", 1: "negative"}, {"positive": 0, "negative": 1}
    model.save_pretrained(tmp_path / "flipped")
    (tmp_path / "flipped" / "tokenizer.json").write_bytes((run_dir / "tokenizer.json").read_bytes())
    (tmp_path / "flipped" / "tokenizer_config.json").write_bytes((run_dir / "tokenizer_config.json").read_bytes())
    # No recipe.yaml in the copy: it needs the run's max_length given, or it would truncate at the default 128.
    evaluate(cli, tmp_path / "flipped", "--benchmark", "glue/sst2", "--data-dir", data_dir, "--limit", "100",
             "--set", "data.max_length=32", output_dir=tmp_path / "flipped-results")
    flipped = results_of(result_file(tmp_path / "flipped-results", "glue/sst2", "flipped"))["sst2"]
    assert_same_scores(scores, flipped, exact=("accuracy",))


# ---- generation and seq2seq: the task's own metrics, independent of the batch size -------------------------------


def _words(seed: int, count: int) -> str:
    generator = random.Random(seed)
    vocabulary = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "log", "big", "small", "red", "blue",
                  "quickly", "slowly"]
    return " ".join(generator.choice(vocabulary) for _ in range(count))


@pytest.fixture(scope="module")
def generation_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generation-data")
    generator = random.Random(0)
    pairs = [{"prompt": _words(i, generator.randint(2, 9)),
              "completion": " " + _words(100 + i, generator.randint(1, 6))} for i in range(12)]
    text = "\n".join(_words(200 + i, generator.randint(3, 30)) for i in range(30)) + "\n"
    (folder / "text.txt").write_text(text)
    documents = [{"document": _words(300 + i, generator.randint(5, 30)), "summary": _words(400 + i, 4)}
                 for i in range(12)]
    return {"pairs": write_jsonl(folder / "pairs.jsonl", pairs), "text": folder / "text.txt",
            "documents": write_jsonl(folder / "documents.jsonl", documents),
            "corpus": [_words(500 + i, 12) for i in range(150)]}


def _scores_by_batch_size(cli, checkpoint, output_dir: Path, *args) -> list[dict]:
    scores = []
    for batch_size in (1, 7, 64):
        evaluate(cli, checkpoint, "--batch-size", batch_size, *args, output_dir=output_dir / str(batch_size))
        document = next((output_dir / str(batch_size)).glob("*/results_*.json"))
        scores.append(next(iter(results_of(document).values())))
    return scores


def test_generation_run_scores_do_not_depend_on_the_batch_size(cli, generation_data, tmp_path):
    """A `finetune generate` run on prompt/completion pairs: greedy completions are generated left-padded, the
    loss is averaged over tokens; BLEU, ROUGE-L, loss and perplexity are the same at batch sizes 1, 7 and 64."""
    from tests.builders import build_tiny_gpt2

    model = build_tiny_gpt2(tmp_path / "gpt2", generation_data["corpus"])
    run_dir = tmp_path / "run"
    trained = invoke(["generate", "--model", model, "--train-file", generation_data["pairs"], "--validation-file",
                      generation_data["pairs"], "--max-steps", "3", "--batch-size", "4", "--max-new-tokens", "8",
                      "--output-dir", run_dir])
    assert trained.exit_code == 0, trained.output
    scores = _scores_by_batch_size(cli, run_dir, tmp_path / "results")
    assert {"loss", "perplexity", "bleu", "rougeL"} <= set(scores[0])
    for other in scores[1:]:
        assert_same_scores(scores[0], other, exact=("bleu", "rougeL"))


def test_text_perplexity_of_a_model_folder_does_not_depend_on_the_batch_size(cli, generation_data, tmp_path):
    """Packed blocks with a short last one: the Trainer's mean of batch losses would move with the batch size."""
    from tests.builders import build_tiny_gpt2

    model = build_tiny_gpt2(tmp_path / "gpt2", generation_data["corpus"])
    scores = _scores_by_batch_size(cli, model, tmp_path / "results", "--dataset", generation_data["text"],
                                   "--set", "data.block_size=16")
    assert set(scores[0]) == {"loss", "perplexity"}
    for other in scores[1:]:
        assert_same_scores(scores[0], other, exact=())


def test_summarization_scores_do_not_depend_on_the_batch_size(cli, generation_data, tmp_path):
    """A T5 model folder (task from its architecture, T5's 'summarize: ' prefix): ROUGE, BLEU, chrF exactly."""
    from tests.builders import build_tiny_t5

    model = build_tiny_t5(tmp_path / "t5", generation_data["corpus"])
    scores = _scores_by_batch_size(cli, model, tmp_path / "results", "--dataset", generation_data["documents"],
                                   "--set", "generation.max_new_tokens=8")
    assert {"rouge1", "rougeL", "bleu", "chrf", "gen_len", "loss"} <= set(scores[0])
    for other in scores[1:]:
        assert_same_scores(scores[0], other, exact=("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf",
                                                    "gen_len"))
