"""LoRA through PEFT: only adapters train, adapters are saved and reload, merging keeps the logits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import invoke
from tests.test_generation import generate_args, make_sentences

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    from tests.builders import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2", make_sentences(1000, seed=0))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    from tests.builders import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama", make_sentences(1000, seed=0))


@pytest.fixture(scope="module")
def sentences_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lora-data") / "train.txt"
    path.write_text("\n".join(make_sentences(600, seed=0)) + "\n", encoding="utf-8")
    return path


def lora_for(task: str, **peft: object):
    """(peft section, PEFT task type) of a LoRA run of `task`, as training passes them to apply_lora."""
    from finetune.config.schema import PeftSection
    from finetune.tasks import get_family

    return PeftSection(enabled=True, **peft), get_family(task).peft_task_type


def train_a_few_steps(model, batch: dict, steps: int = 3) -> None:
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def changed_parameters(model, before: dict) -> set[str]:
    import torch

    return {name for name, value in model.named_parameters() if not torch.equal(value.detach(), before[name])}


def test_only_adapter_weights_change_in_a_causal_lm(tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM

    from finetune.models.lora import apply_lora, parameter_counts

    model = apply_lora(AutoModelForCausalLM.from_pretrained(tiny_llama), *lora_for("generation"))
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    ids = torch.randint(0, 100, (4, 12))
    train_a_few_steps(model, {"input_ids": ids, "labels": ids})

    changed = changed_parameters(model, before)
    assert changed and all("lora_" in name for name in changed)
    assert any("lora_B" in name for name in changed)  # B starts at zero, so the adapter now does something
    targets = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in changed}
    assert targets == {"q_proj", "v_proj"}  # Llama's default target modules
    counts = parameter_counts(model)
    assert 0 < counts["trainable_parameters"] < counts["total_parameters"] / 10


def test_classification_lora_trains_adapters_and_the_new_head(tiny_bert):
    import torch
    from transformers import AutoModelForSequenceClassification

    from finetune.models.lora import apply_lora

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    model = apply_lora(base, *lora_for("classification"))
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    train_a_few_steps(model, {"input_ids": torch.randint(5, 100, (4, 10)), "labels": torch.tensor([0, 1, 0, 1])})

    changed = changed_parameters(model, before)
    head = {name for name in changed if "classifier" in name}
    assert head and all("lora_" in name for name in changed - head)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in changed - head} == {"query", "value"}


def test_generate_with_lora_saves_only_the_adapter_and_reports_parameters(tiny_gpt2, sentences_file, tmp_path):
    from safetensors import safe_open

    output = tmp_path / "run"
    result = invoke(generate_args(tiny_gpt2, output, "--train-file", sentences_file, "--block-size", 32,
                                  "--max-steps", 8, "--lora", "train.learning_rate=1e-2"))
    assert result.exit_code == 0, result.output
    assert "LoRA (r=8, alpha=16) on c_attn" in result.output
    assert (output / "adapter_model.safetensors").is_file() and (output / "adapter_config.json").is_file()
    assert not (output / "model.safetensors").exists()
    with safe_open(output / "adapter_model.safetensors", "pt") as adapter:
        assert adapter.keys() and all("lora_" in key for key in adapter.keys())  # noqa: SIM118 (not a dict)
    metrics = json.loads((output / "metrics.json").read_text())
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"]
    assert "eval_perplexity" in metrics and (output / "samples.jsonl").is_file()

    result = invoke(["predict", output, "--prompt", "the cat", "--max-new-tokens", 4])
    assert result.exit_code == 0, result.output

    # A standard PEFT folder: plain transformers (its PEFT integration), its pipeline and PEFT load it as is.
    import torch
    import transformers
    from peft import AutoPeftModelForCausalLM

    from finetune.models.lora import load_run_model

    assert not (output / "config.json").exists()
    ids = torch.randint(0, 200, (1, 8))
    with torch.inference_mode():
        expected = load_run_model(output, "AutoModelForCausalLM")(input_ids=ids).logits
        for model in (transformers.AutoModelForCausalLM.from_pretrained(output),
                      AutoPeftModelForCausalLM.from_pretrained(output)):
            torch.testing.assert_close(model.eval()(input_ids=ids).logits, expected)
    generator = transformers.pipeline("text-generation", model=str(output))
    assert generator("the cat", max_new_tokens=3, do_sample=False)[0]["generated_text"].startswith("the cat")


def test_merged_export_gives_the_adapter_models_logits(tiny_llama, sentences_file, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from finetune.models.lora import load_run_model

    output = tmp_path / "run"
    result = invoke(generate_args(tiny_llama, output, "--train-file", sentences_file, "--block-size", 32,
                                  "--max-steps", 8, "--lora", "train.learning_rate=2e-2"))
    assert result.exit_code == 0, result.output
    result = invoke(["export", output, "--merge"])
    assert result.exit_code == 0, result.output
    merged_dir = output / "merged"
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()

    ids = torch.randint(0, 200, (2, 16))
    with torch.inference_mode():
        adapter_logits = load_run_model(output, "AutoModelForCausalLM")(input_ids=ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged_dir)(input_ids=ids).logits  # plain transformers
        base_logits = AutoModelForCausalLM.from_pretrained(tiny_llama)(input_ids=ids).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=1e-5)
    assert (adapter_logits - base_logits).abs().max() > 1e-4  # the adapter learned something to merge

    result = invoke(["export", output, "--merge"])  # never overwrites
    assert result.exit_code == 2 and "already exists" in result.output


def three_label_rows(rows: list[dict]) -> list[dict]:
    """The sentiment rows with a third label, so a head of the base model's default size (2) cannot hold it."""
    return [{**row, "label": "neutral" if index % 3 == 0 else row["label"]} for index, row in enumerate(rows)]


@pytest.fixture(scope="module")
def three_label_lora_run(tmp_path_factory, tiny_bert, sentiment_rows) -> Path:
    from tests.helpers import write_csv

    work = tmp_path_factory.mktemp("lora-3")
    train_rows, eval_rows = sentiment_rows
    output = work / "run"
    result = invoke(["classify", "--model", tiny_bert,
                     "--train-file", write_csv(work / "train.csv", three_label_rows(train_rows[:200])),
                     "--validation-file", write_csv(work / "validation.csv", three_label_rows(eval_rows[:60])),
                     "--epochs", 1, "--batch-size", 16, "--learning-rate", 5e-3, "--lora", "--output-dir", output])
    assert result.exit_code == 0, result.output
    return output


def test_classify_with_lora_predicts_and_merges(three_label_lora_run):
    from finetune.tasks.base import PredictRequest
    from finetune.tasks.predict import predict

    output = three_label_lora_run
    assert (output / "adapter_model.safetensors").is_file() and (output / "base_model_config.json").is_file()
    assert not (output / "config.json").exists()  # transformers would take the folder for a full model
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["trainable_parameters"] < metrics["total_parameters"]

    texts = [("a gorgeous witty film", None), ("dull and awful", None)]
    _, from_adapter = predict(output, PredictRequest(texts))
    assert {prediction["label"] for prediction in from_adapter} <= {"negative", "neutral", "positive"}
    assert invoke(["export", output, "--merge"]).exit_code == 0
    _, from_merged = predict(output / "merged", PredictRequest(texts))
    assert [p["score"] for p in from_merged] == pytest.approx([p["score"] for p in from_adapter], abs=1e-5)


def test_a_lora_classifier_loads_in_transformers_and_peft_with_its_labels(three_label_lora_run):
    """The run directory is a standard PEFT folder: transformers' PEFT integration, its pipeline and PEFT's
    AutoPeftModel all load it, given the label kwargs the model card shows, and agree with finetune's loader."""
    import torch
    import transformers
    from peft import AutoPeftModelForSequenceClassification

    from finetune.models.lora import label_kwargs, load_run_model

    run = three_label_lora_run
    kwargs = label_kwargs(run)
    assert kwargs["id2label"] == {0: "negative", 1: "neutral", 2: "positive"}
    tokenizer = transformers.AutoTokenizer.from_pretrained(run)
    batch = tokenizer(["a gorgeous witty film", "dull and awful"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = load_run_model(run, "AutoModelForSequenceClassification")(**batch).logits
        from_transformers = transformers.AutoModelForSequenceClassification.from_pretrained(run, **kwargs).eval()
        from_peft = AutoPeftModelForSequenceClassification.from_pretrained(run, **kwargs).eval()
        for model in (from_transformers, from_peft):
            assert model.config.id2label == kwargs["id2label"]
            torch.testing.assert_close(model(**batch).logits, expected)
    classifier = transformers.pipeline("text-classification", model=str(run), model_kwargs=kwargs)
    assert classifier.model.config.id2label == kwargs["id2label"]
    answer = classifier("a gorgeous witty film")[0]
    assert answer["label"] in {"negative", "neutral", "positive"}


def test_a_lora_card_says_peft_and_its_snippet_loads_the_labels(three_label_lora_run):
    from tests.helpers import checked_model_card

    card = checked_model_card(three_label_lora_run)  # the snippet runs: pipeline + adapter + label kwargs
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert "'neutral'" in card.text and "model_kwargs=labels" in card.text


def test_summarize_with_lora(tmp_path):
    from tests.builders import build_tiny_t5

    rows = [{"document": f"the {word} sat on the mat all day long", "summary": f"{word} sat"}
            for word in ("cat", "dog", "bird", "man", "child", "farmer") * 4]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    model = build_tiny_t5(tmp_path / "t5", [row["document"] for row in rows])
    output = tmp_path / "run"
    result = invoke(["summarize", "--model", model, "--train-file", train, "--validation-file", train,
                     "--max-steps", 3, "--batch-size", 8, "--max-new-tokens", 4, "--lora", "--output-dir", output])
    assert result.exit_code == 0, result.output
    assert "on q, v" in result.output  # T5's default target modules
    assert (output / "adapter_model.safetensors").is_file() and not (output / "config.json").exists()
    from transformers import AutoModelForSeq2SeqLM

    assert type(AutoModelForSeq2SeqLM.from_pretrained(output)).__name__ == "T5ForConditionalGeneration"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    assert invoke(["export", output, "--merge"]).exit_code == 0


def test_lora_without_peft_names_the_extra(tiny_gpt2, sentences_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    result = invoke(generate_args(tiny_gpt2, tmp_path / "run", "--train-file", sentences_file, "--max-steps", 1,
                                  "--lora"))
    assert result.exit_code == 2
    assert "LoRA needs the peft package: pip install 'finetune[lora]'" in result.output


def test_unknown_target_modules_are_a_user_error(tiny_gpt2):
    from transformers import AutoModelForCausalLM

    from finetune.errors import UserError
    from finetune.models.lora import apply_lora

    with pytest.raises(UserError, match="c_attn"):  # the message lists the layers there are
        apply_lora(AutoModelForCausalLM.from_pretrained(tiny_gpt2),
                   *lora_for("generation", target_modules=["q_proj"]))


def test_export_refuses_a_run_without_adapters(tmp_path):
    (tmp_path / "recipe.yaml").write_text("task: generation\n")
    result = invoke(["export", tmp_path, "--merge"])
    assert result.exit_code == 2 and "holds no LoRA adapter" in result.output
