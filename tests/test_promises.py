"""Promises the README makes that no other test defended: failing fast without the Hub, --debug, --verbose,
mixed-precision selection, gradient accumulation and checkpointing, named-checkpoint resume, predict --file."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_csv, write_jsonl


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def without_offline(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    return {**env, **extra}


def test_an_unreachable_hub_fails_fast_with_one_line(tmp_path, sentiment_rows):
    """Without HF_HUB_OFFLINE and with the Hub unreachable, a Hub model id fails with the offline message (not a
    minute of retries or a traceback); the probe switched the libraries to offline mode."""
    train, _ = sentiment_rows
    data = write_csv(tmp_path / "train.csv", train[:20])
    env = without_offline(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-m", "finetune", "classify", "--model", "someone/some-model",
                             "--train-file", str(data), "--output-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "the Hub is offline (HF_HUB_OFFLINE=1 or unreachable)" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1


def test_debug_shows_the_traceback(tmp_path):
    args = ["classify", "--train-file", str(tmp_path / "missing.csv"), "--output-dir", str(tmp_path / "run")]
    plain = subprocess.run([sys.executable, "-m", "finetune", *args], capture_output=True, text=True)
    debug = subprocess.run([sys.executable, "-m", "finetune", "--debug", *args], capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "missing.csv" in plain.stderr
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UserError" in debug.stderr


def test_verbose_lets_the_libraries_log(tmp_path, tiny_bert, sentiment_rows):
    train, _ = sentiment_rows
    recipe = tmp_path / "r.yaml"
    data = write_csv(tmp_path / "t.csv", train[:40])
    recipe.write_text(f"model:\n  name: {tiny_bert}\ndata:\n  train_file: {data}\n")
    quiet = subprocess.run([sys.executable, "-m", "finetune", "check", str(recipe)], capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-m", "finetune", "--verbose", "check", str(recipe)], capture_output=True,
                          text=True)
    assert quiet.returncode == loud.returncode == 0, loud.stderr
    # transformers' informational log (which files a tokenizer or config loads from) only with --verbose
    assert "loading" not in quiet.stderr.lower() and "loading" in loud.stderr.lower()


@pytest.mark.parametrize("requested, on_gpu, bf16, cpu_bf16, expected", [
    ("auto", False, False, None, "no"), ("auto", True, True, None, "bf16"), ("auto", True, False, None, "fp16"),
    # CPUs: bf16 only with AMX-BF16 tiles; AVX512-BF16 alone trained slower than float32 (benchmarks/RESULTS.md)
    ("auto", False, False, "amx", "bf16"), ("auto", False, False, "avx512", "no"),
    ("auto", True, False, "amx", "fp16"),  # a GPU decides, not the CPU next to it
    ("bf16", False, False, None, "bf16"), ("fp16", True, True, None, "fp16"), ("no", True, True, "amx", "no"),
    ("no", False, False, "amx", "no")])
def test_mixed_precision_selection(requested, on_gpu, bf16, cpu_bf16, expected):
    from finetune.training.arguments import choose_precision

    assert choose_precision(requested, on_gpu, bf16, cpu_bf16) == expected


def test_cpu_bf16_support_reads_this_cpu():
    """The capability auto decides on agrees with what the kernel reports for this CPU, and a run told to stay on
    the CPU gets the precision the table above gives for it."""
    from pathlib import Path

    from finetune.training.arguments import cpu_bf16_support, resolve_mixed_precision

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo")
    flags = {flag for line in cpuinfo.read_text().splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[1].split()}
    expected = "amx" if "amx_bf16" in flags else "avx512" if "avx512_bf16" in flags else None
    assert cpu_bf16_support() == expected
    assert resolve_mixed_precision("auto", use_cpu=True) == ("bf16" if expected == "amx" else "no")


def test_gradient_accumulation_matches_the_larger_batch(cli, tiny_bert, sentiment_rows, tmp_path):
    """2 x 16 with accumulation (and gradient checkpointing) trains like one batch of 32: the same number of
    updates on the same examples in the same order, and the same loss scale (transformers 5 took a classifier's
    mean loss for a token-summed one and reported it, and clipped its gradients, multiplied by the steps)."""
    train, validation = sentiment_rows
    files = ["--train-file", write_csv(tmp_path / "t.csv", train[:192]),
             "--validation-file", write_csv(tmp_path / "v.csv", validation[:40])]
    common = ["classify", "--model", tiny_bert, *files, "--epochs", 2, "--learning-rate", 1e-3, "--max-length", 32]
    runs = {"accumulated": ["--batch-size", 16, "--gradient-accumulation-steps", 2, "--gradient-checkpointing"],
            "large-batch": ["--batch-size", 32]}
    metrics = {}
    for name, extra in runs.items():
        result = cli([*common, *extra, "--output-dir", tmp_path / name])
        assert result.exit_code == 0, result.output
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    accumulated, large = metrics["accumulated"], metrics["large-batch"]
    assert accumulated["global_step"] == large["global_step"] == 2 * 192 // 32
    assert math.isfinite(accumulated["train_loss"]) and math.isfinite(accumulated["eval_loss"])
    # Dropout draws differ between two batches of 16 and one of 32, so close, not equal.
    assert accumulated["train_loss"] == pytest.approx(large["train_loss"], rel=0.05)
    assert accumulated["eval_loss"] == pytest.approx(large["eval_loss"], rel=0.05)


def test_predict_reads_inputs_from_text_and_jsonl_files(cli, tiny_bert, sentiment_rows, tmp_path):
    train, validation = sentiment_rows
    run_dir = tmp_path / "run"
    result = cli(["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "t.csv", train),
                  "--validation-file", write_csv(tmp_path / "v.csv", validation[:40]), "--epochs", 3,
                  "--learning-rate", 3e-3, "--batch-size", 16, "--max-length", 32, "--output-dir", run_dir])
    assert result.exit_code == 0, result.output
    lines = tmp_path / "inputs.txt"
    lines.write_text("a gorgeous witty film\n\nthe plot was dull and awful\n", encoding="utf-8")
    rows = write_jsonl(tmp_path / "inputs.jsonl", [{"text": "a gorgeous witty film", "label": "x"},
                                                   {"text": "dull awful boring", "id": 3}])
    for file in (lines, rows):
        predicted = cli(["predict", run_dir, "--file", file, "--json"])
        assert predicted.exit_code == 0, predicted.output
        records = [json.loads(line) for line in predicted.output.splitlines()]
        assert [record["label"] for record in records] == ["positive", "negative"]
        assert all(0.5 <= record["score"] <= 1 for record in records)
    missing = cli(["predict", run_dir, "--file", tmp_path / "nope.txt"])
    assert missing.exit_code == 2 and "Input file not found" in missing.output


def test_resume_from_a_named_checkpoint(cli, tiny_bert, sentiment_rows, tmp_path):
    train, validation = sentiment_rows
    args = ["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "t.csv", train[:96]),
            "--validation-file", write_csv(tmp_path / "v.csv", validation[:24]), "--batch-size", 16,
            "--epochs", 2, "--max-length", 32, "--output-dir", tmp_path / "run", "train.eval_strategy=steps",
            "train.eval_steps=4", "train.save_total_limit=5"]
    assert cli(args).exit_code == 0
    (tmp_path / "run" / "metrics.json").unlink()
    named = cli([*args, "train.resume=checkpoint-4"])
    assert named.exit_code == 0, named.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(tmp_path / "run" / "checkpoint-4") and metrics["global_step"] == 12
    (tmp_path / "run" / "metrics.json").unlink()
    unknown = cli([*args, "train.resume=checkpoint-7"])
    assert unknown.exit_code == 2 and "checkpoint-7" in unknown.output and "checkpoint-12" in unknown.output
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_config_path_of_a_run_is_what_predict_loads(tmp_path):
    """A folder that is not a run is refused with the run-directory message, before anything loads."""
    from finetune.errors import UserError
    from finetune.tasks.predict import family_of_run

    with pytest.raises(UserError, match="holds no trained model"):
        family_of_run(Path(tmp_path))
