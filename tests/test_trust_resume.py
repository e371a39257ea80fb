"""Resume is exact with max_steps (issue 13): a run killed during its final save, after the checkpoint at
max_steps was written, resumes to exactly max_steps and the same evaluation metrics."""

from __future__ import annotations

import json

from tests.helpers import invoke, write_csv


def test_kill_during_final_save_then_resume_stops_at_max_steps(tmp_path, tiny_bert, sentiment_rows):
    train = write_csv(tmp_path / "train.csv", sentiment_rows[0][:40])
    validation = write_csv(tmp_path / "validation.csv", sentiment_rows[1][:16])
    run_dir = tmp_path / "run"
    # 40 rows at 8 a step: 5 steps an epoch, so max_steps=3 ends mid-epoch; checkpoints at steps 2 and 3 (the end).
    result = invoke(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", validation,
                     "--output-dir", run_dir, "--max-steps", "3", "--batch-size", "8", "--max-length", "16",
                     "train.eval_strategy=steps", "train.eval_steps=2", "train.save_total_limit=5",
                     "train.use_cpu=true"])
    assert result.exit_code == 0, result.output
    finished = json.loads((run_dir / "metrics.json").read_text())
    assert finished["global_step"] == 3 and (run_dir / "checkpoint-3").is_dir()

    # What a SIGKILL during the final save leaves: the checkpoints, recipe and marker, but no final model files,
    # no model card and no metrics.json (written last).
    for name in ("metrics.json", "README.md", "config.json", "model.safetensors", "trainer_state.json"):
        (run_dir / name).unlink()
    (run_dir / ".final-model.tmp").mkdir()
    (run_dir / ".final-model.tmp" / "model.safetensors").write_bytes(b"partial")

    result = invoke(["train", run_dir / "recipe.yaml", "--resume"])
    assert result.exit_code == 0, result.output
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["global_step"] == 3  # not 4: no step past max_steps
    for key in ("eval_accuracy", "eval_loss", "eval_f1"):
        assert resumed[key] == finished[key], key
    assert not (run_dir / ".final-model.tmp").exists()


def test_trainer_still_has_what_restore_finished_training_uses():
    """compat.restore_finished_training's private Trainer methods (kept here, not in test_compat.py, to keep the
    issue-13 changes in their own files)."""
    import inspect

    from transformers import Trainer

    assert "resume_from_checkpoint" in inspect.signature(Trainer._load_from_checkpoint).parameters, \
        "compat.restore_finished_training: Trainer._load_from_checkpoint changed"
    assert callable(getattr(Trainer, "_load_best_model", None)), \
        "compat.restore_finished_training: Trainer._load_best_model is gone"
