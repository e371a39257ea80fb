"""Each shim in finetune/compat.py against the installed libraries: when one of them changes a private API that
finetune relies on, the test named after the shim fails here, not a training run somewhere else."""

from __future__ import annotations

import inspect

import pytest

from finetune import compat


@pytest.mark.parametrize("method, parameters", sorted(compat.TRAINER_PRIVATE_METHODS.items()))
def test_trainer_still_has_the_private_methods_finetune_overrides(method, parameters):
    from transformers import Trainer

    assert hasattr(Trainer, method), f"transformers.Trainer.{method} is gone: update compat.TrainerHooks"
    signature = inspect.signature(getattr(Trainer, method))
    assert list(signature.parameters)[1:1 + len(parameters)] == list(parameters), signature


def test_trainer_hooks_reach_the_trainer(tmp_path):
    """The public hook names really replace the Trainer's samplers (and fall back to them when they return None)."""
    import datasets
    import torch
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainingArguments

    class Ordered(compat.TrainerHooks, Trainer):
        def eval_sampler(self, dataset):
            return SequentialSampler(dataset)

    model = torch.nn.Linear(2, 2)
    data = datasets.Dataset.from_dict({"input_ids": [[1, 2], [3, 4], [5, 6]]})
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                             train_sampling_strategy="group_by_length")
    trainer = Ordered(model=model, args=args, train_dataset=data)
    assert isinstance(trainer._get_eval_sampler(data), SequentialSampler)
    assert trainer._get_train_sampler() is not None  # None from the hook: the Trainer's own sampler


def test_tied_weight_keys_name_gpt2s_output_embedding(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=16))
    assert "lm_head.weight" in compat.tied_weight_keys(model)


def test_conv1d_is_the_layer_gpt2_uses():
    from transformers import GPT2Config, GPT2Model

    model = GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=16))
    assert isinstance(model.h[0].attn.c_attn, compat.conv1d_class())


def test_dataset_fingerprint_and_arrow_file_round_trip(tmp_path):
    import datasets

    dataset = datasets.Dataset.from_dict({"a": [1, 2, 3]})
    assert compat.dataset_fingerprint(dataset) == dataset._fingerprint and len(compat.dataset_fingerprint(dataset))
    path = tmp_path / "data.arrow"
    dataset.flatten_indices(cache_file_name=str(path))
    reloaded = compat.dataset_from_arrow_file(path, fingerprint="f" * 32)
    assert reloaded["a"] == [1, 2, 3] and compat.dataset_fingerprint(reloaded) == "f" * 32


def test_offline_flag_reaches_the_imported_modules(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    for name in compat.OFFLINE_FLAG_MODULES:
        module = __import__(name, fromlist=["HF_HUB_OFFLINE"])
        assert hasattr(module, "HF_HUB_OFFLINE"), f"{name}.HF_HUB_OFFLINE is gone: update the shim"
        monkeypatch.setattr(module, "HF_HUB_OFFLINE", False)
    compat.set_hub_offline_in_loaded_modules()
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True and datasets.config.HF_HUB_OFFLINE is True


def test_peft_still_ships_its_lora_target_table():
    pytest.importorskip("peft")  # the lora extra; the dev extra installs it
    assert compat.peft_default_lora_targets("llama") == ["q_proj", "v_proj"]
    assert compat.peft_default_lora_targets("no-such-model") is None


def test_accelerate_launcher_and_config_locations():
    import importlib

    launcher = importlib.import_module(compat.ACCELERATE_LAUNCH_MODULE)
    assert callable(getattr(launcher, "main", None)), "accelerate's launch module has no main(): update the shim"
    assert compat.accelerate_default_config_file().name.endswith((".yaml", ".json"))


def test_use_causal_lm_loss_names_the_loss_gpt2_leaves_unnamed(caplog):
    """transformers derives `loss_type` from the class name; GPT2LMHeadModel's says nothing, so it would warn."""
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=1, n_head=1, vocab_size=16, n_positions=8))
    assert hasattr(model, "loss_type"), "PreTrainedModel.loss_type is gone: update compat.use_causal_lm_loss"
    compat.use_causal_lm_loss(model)
    assert model.loss_type == "ForCausalLM" and callable(model.loss_function)


def test_tensorboard_writer_opens_where_logging_dir_points(tmp_path, monkeypatch):
    """keep_tensorboard_events_in sets TensorBoardCallback.logging_dir; a log before on_train_begin writes there."""
    pytest.importorskip("tensorboard")
    from types import SimpleNamespace

    from transformers import TrainerState, TrainingArguments
    from transformers.integrations import TensorBoardCallback

    from finetune.compat import keep_tensorboard_events_in

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    callback = TensorBoardCallback()
    assert callback.logging_dir is None  # compat.keep_tensorboard_events_in: the attribute is gone or renamed
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[callback]))
    keep_tensorboard_events_in(trainer, tmp_path / "run")
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none")
    callback.on_log(args, TrainerState(), None, logs={"eval_loss": 1.0})
    callback.on_train_begin(args, TrainerState(), None)
    callback.on_train_end(args, TrainerState(), None)
    assert list((tmp_path / "run" / "runs").glob("*/events.out.tfevents.*"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kept", [False, True])
def test_generation_config_kept_undoes_what_prediction_step_fills_in(kept, tmp_path):
    """Seq2SeqTrainer.prediction_step sets max_length (20) on the model's own generation_config next to
    max_new_tokens; wrapped, the config is as the recipe left it. The unwrapped case shows the upstream behaviour
    still exists: when it fails, the shim can go."""
    import datasets
    from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from finetune.tasks import get_family

    folder = get_family("summarization").tiny_model(tmp_path / "t5", ["the cat sat on the mat"] * 20)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    model.generation_config.max_new_tokens, model.generation_config.max_length = 4, None
    trainer_class = compat.generation_config_kept(Seq2SeqTrainer) if kept else Seq2SeqTrainer
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True,
                                    predict_with_generate=True, per_device_eval_batch_size=2)
    data = datasets.Dataset.from_dict({"input_ids": [[5, 6, 1]] * 2, "labels": [[7, 1]] * 2})
    trainer_class(model=model, args=args).predict(data)
    assert model.generation_config.max_new_tokens == 4
    assert (model.generation_config.max_length is None) == kept
