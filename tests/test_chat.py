"""Chat and instruction fine-tuning (`finetune generate --format chat`): data layouts and their checks, the chat
template saved with the run, loss on assistant turns only, predict --message and `finetune chat`, GSM8K scoring."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from finetune.tasks.answer_match import answer_scores, flexible_answer, strict_answer
from finetune.tasks.chat_format import chat_layout, conversation_problem, message_layout, row_messages
from finetune.tasks.lm_inputs import IGNORE_INDEX
from tests.conftest import requires_data
from tests.helpers import invoke, write_jsonl

WORDS = ["red", "blue", "green", "cat", "dog", "bird", "sun", "moon", "tree", "fish", "what", "is", "the", "a"]
REPLY = "the answer is blue"


def user_text(generator: random.Random) -> str:
    return " ".join(generator.choice(WORDS) for _ in range(generator.randint(3, 7)))


def fixed_reply_rows(count: int, seed: int) -> list[dict]:
    """Dialogues whose user turns are random words and whose assistant always says REPLY."""
    generator = random.Random(seed)
    return [{"messages": [{"role": "user", "content": user_text(generator)},
                          {"role": "assistant", "content": REPLY}]} for _ in range(count)]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory) -> Path:
    """A tiny random GPT-2 without a chat template: the "model without one gets the default" case."""
    from tests.builders import build_tiny_gpt2

    texts = [user_text(random.Random(seed)) for seed in range(300)] + [REPLY] * 50
    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-chat-gpt2", texts)


def chat_tokenizer(model: Path):
    from transformers import AutoTokenizer

    from finetune.tasks.chat_template import prepare_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    assert tokenizer.chat_template is None
    assert prepare_tokenizer(tokenizer, None).startswith("default ChatML")
    return tokenizer


# ---- data layouts and their checks ------------------------------------------------------------------------------


def test_every_layout_becomes_alternating_user_and_assistant_turns():
    messages = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert row_messages(messages, message_layout(list(messages))) == messages["messages"]
    sharegpt = {"conversations": [{"from": "system", "value": "be kind"}, {"from": "human", "value": "hi"},
                                  {"from": "gpt", "value": "hello"}]}
    assert row_messages(sharegpt, message_layout(list(sharegpt))) == [
        {"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]
    alpaca = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
    assert row_messages(alpaca, chat_layout(list(alpaca), None), system_prompt="You add.") == [
        {"role": "system", "content": "You add."}, {"role": "user", "content": "Add the numbers.\n\n2 and 3"},
        {"role": "assistant", "content": "5"}]
    gsm8k = {"question": "1+1?", "answer": "1+1=2\n#### 2"}
    assert row_messages(gsm8k, chat_layout(list(gsm8k), None)) == [
        {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "1+1=2\n#### 2"}]
    # A system column wins over --system-prompt; a conversation that has a system turn keeps its own.
    with_system = {**messages, "system": "from the data"}
    assert row_messages(with_system, message_layout(list(with_system)), "flag")[0]["content"] == "from the data"


@pytest.mark.parametrize(("turns", "problem"), [
    ([], "no turns"),
    ([{"role": "narrator", "content": "x"}], "turn 1 has unknown role 'narrator'"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}], "turn 2 (assistant) is empty"),
    ([{"role": "assistant", "content": "hi"}], "turn 1 is an assistant turn before any user turn"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "turn 2 is a second user turn in a row"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "turn 2 is a system turn after"),
    ([{"role": "user", "content": "a"}], "no assistant turn to learn from"),
])
def test_malformed_conversations_are_named(turns, problem):
    assert problem in conversation_problem(turns)


def test_check_names_malformed_rows_and_skip_invalid_leaves_them_out(tiny_chat_model, tmp_path, cli):
    rows = fixed_reply_rows(10, seed=0)
    rows[3]["messages"][0]["role"] = "narrator"
    rows[6]["messages"] = rows[6]["messages"][1:]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    args = ["generate", "--model", tiny_chat_model, "--train-file", data, "--output-dir", tmp_path / "run", "--dry-run"]
    refused = cli(args)
    assert refused.exit_code == 2
    assert ("2 of 9 train conversations are malformed: row 4: turn 1 has unknown role 'narrator' (expected system, "
            "user or assistant); row 7: turn 1 is an assistant turn before any user turn") in refused.output
    assert "--skip-invalid" in refused.output and not (tmp_path / "run").exists()
    checked = cli([*args, "--skip-invalid"])
    assert checked.exit_code == 0, checked.output
    assert "chat data" in checked.output and "messages (role/content turns)" in checked.output
    assert re.search(r"train rows +7\n", checked.output)  # 10 rows: 1 held out for evaluation, 2 left out
    assert "default ChatML" in checked.output
    packed = cli([*args, "--skip-invalid", "--block-size", 32])
    assert packed.exit_code == 2 and "not packed into blocks" in packed.output


# ---- templates and labels -----------------------------------------------------------------------------------------


DIALOGUE = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "red cat"},
            {"role": "assistant", "content": "blue dog"}, {"role": "user", "content": "green sun"},
            {"role": "assistant", "content": REPLY}]


def test_labels_are_the_assistant_turns_with_their_end_of_turn_token(tiny_chat_model):
    from finetune.tasks.chat_template import DEFAULT_CHAT_TEMPLATE, encode_example

    tokenizer = chat_tokenizer(tiny_chat_model)
    ids, labels, dropped = encode_example(tokenizer, DIALOGUE, max_length=512)
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(DIALOGUE, tokenize=False)
    assert tokenizer.decode([label for label in labels if label != IGNORE_INDEX]) == \
        f"blue dog<|im_end|>{REPLY}<|im_end|>"
    assert dropped == 0
    # A template without {% generation %} blocks: assistant turns found by rendering the turns before each one.
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE.replace("{%- generation %}", "").replace("{%- endgeneration %}",
                                                                                            "")
    prefix_ids, prefix_labels, _ = encode_example(tokenizer, DIALOGUE, max_length=512)
    assert prefix_ids == ids
    assert tokenizer.decode([label for label in prefix_labels if label != IGNORE_INDEX]) == \
        f"blue dog<|im_end|>\n{REPLY}<|im_end|>\n"  # the turn as rendered, its newline included


def test_long_dialogues_lose_whole_earliest_turns_and_keep_the_last_reply(tiny_chat_model):
    from finetune.tasks.chat_template import encode_example

    tokenizer = chat_tokenizer(tiny_chat_model)
    last = DIALOGUE[:1] + DIALOGUE[3:]
    room = len(tokenizer.apply_chat_template(last, tokenize=True)["input_ids"])
    ids, labels, dropped = encode_example(tokenizer, DIALOGUE, max_length=room)
    assert dropped == 2 and tokenizer.decode(ids) == tokenizer.apply_chat_template(last, tokenize=False)
    assert encode_example(tokenizer, DIALOGUE, max_length=room - 1) is None  # training: the row is dropped
    kept = encode_example(tokenizer, DIALOGUE, max_length=room - 1, keep=True)  # evaluation: cut from the left
    assert kept is not None and kept[:2] == (ids[1:], labels[1:])


def test_user_tokens_carry_no_loss(tiny_chat_model):
    """Two batches that differ only in user tokens that no assistant token can see (a last user turn) have the same
    loss: the loss is on assistant tokens only. (Earlier user turns change the loss only as the replies' context.)"""
    import torch
    from transformers import AutoModelForCausalLM

    from finetune.tasks.chat_template import encode_example
    from finetune.tasks.lm_inputs import CausalLMCollator

    tokenizer = chat_tokenizer(tiny_chat_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
    model.resize_token_embeddings(len(tokenizer))
    generator = random.Random(0)

    def batch(last_user_turns: list[str]):
        examples = [encode_example(tokenizer, [*DIALOGUE, {"role": "user", "content": text}], 512)
                    for text in last_user_turns]
        return CausalLMCollator(tokenizer.eos_token_id)([{"input_ids": ids, "labels": labels}
                                                         for ids, labels, _ in examples])

    first, second = batch(["red red red", "cat"]), batch(["moon tree fish", "dog"])
    assert not torch.equal(first["input_ids"], second["input_ids"])
    with torch.no_grad():
        losses = [model(**inputs).loss.item() for inputs in (first, second)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    changed = batch([user_text(generator) + " blue", "cat"])  # a different length: padding is masked too
    with torch.no_grad():
        assert model(**changed).loss.item() == pytest.approx(losses[0], abs=1e-6)


# ---- a chat run end to end: learning, the saved template, predict, chat ------------------------------------------


@pytest.fixture(scope="module")
def chat_run(tiny_chat_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("chat-run")
    train = write_jsonl(folder / "train.jsonl", fixed_reply_rows(64, seed=0))
    validation = write_jsonl(folder / "validation.jsonl", fixed_reply_rows(8, seed=1))
    questions = [{"messages": row["messages"][:1]} for row in fixed_reply_rows(2, seed=2)]  # no replies: prompts
    test = write_jsonl(folder / "test.jsonl", questions)
    result = invoke(["generate", "--model", tiny_chat_model, "--train-file", train, "--validation-file", validation,
                     "--test-file", test,
                     "--output-dir", folder / "run", "--epochs", 8, "--batch-size", 8, "--learning-rate", 1e-2,
                     "--max-length", 64, "--max-new-tokens", 8, "--system-prompt", "You answer in colours.",
                     "generation.num_samples=2", "train.logging_steps=1000"])
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_loss_on_assistant_tokens_falls_to_near_certainty(chat_run):
    metrics = json.loads((chat_run / "metrics.json").read_text())
    # The reply is fixed and the user turns are random: only a loss on assistant tokens can get this low.
    assert metrics["eval_perplexity_before_training"] > 100
    assert metrics["eval_perplexity"] < 1.5
    assert metrics["eval_rougeL"] == pytest.approx(100.0)  # ROUGE-L x100: every reply exact
    sample = json.loads((chat_run / "samples.jsonl").read_text().splitlines()[0])
    assert sample["conversation"].startswith("system: You answer in colours.\nuser: ")
    assert sample["after"] == REPLY and sample["before"] != REPLY
    assert "format: chat" in (chat_run / "recipe.yaml").read_text()
    answers = [json.loads(line) for line in (chat_run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [answer["prediction"] for answer in answers] == [REPLY, REPLY]
    assert [turn["role"] for turn in answers[0]["messages"]] == ["system", "user"]


def test_evaluating_the_run_on_its_own_data_reproduces_its_scores(chat_run, tmp_path, cli):
    result = cli(["evaluate", chat_run, "--output-dir", tmp_path])
    assert result.exit_code == 0, result.output
    scores = json.loads(next(tmp_path.glob("*/results_*.json")).read_text())["results"]["validation"]
    metrics = json.loads((chat_run / "metrics.json").read_text())
    assert scores["rougeL,none"] == metrics["eval_rougeL"]
    assert scores["loss,none"] == pytest.approx(metrics["eval_loss"], rel=1e-4)  # one batch: the same mean


def test_saved_tokenizer_renders_what_was_trained_on(chat_run, tiny_chat_model):
    from transformers import AutoTokenizer, pipeline

    from finetune.tasks.chat_template import encode_example

    saved = AutoTokenizer.from_pretrained(chat_run)
    conversation = [{"role": "system", "content": "You answer in colours."},
                    *fixed_reply_rows(1, seed=5)[0]["messages"]]
    trained_ids, _, _ = encode_example(chat_tokenizer(tiny_chat_model), conversation, 64)
    assert saved.apply_chat_template(conversation, tokenize=True)["input_ids"] == trained_ids
    # Plain transformers: a messages list in, the reply out, stopped at the end of the turn.
    generator = pipeline("text-generation", model=str(chat_run))
    reply = generator(conversation[:-1], max_new_tokens=12, do_sample=False)[0]["generated_text"][-1]
    assert reply == {"role": "assistant", "content": REPLY}


def test_predict_message_answers_as_trained(chat_run, tmp_path, cli):
    result = cli(["predict", chat_run, "--message", "red tree", "--message", "blue", "--message", "what moon",
                  "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["output"] == REPLY
    assert [turn["role"] for turn in record["messages"]] == ["system", "user", "assistant", "user"]
    dialogues = write_jsonl(tmp_path / "dialogues.jsonl", [{"messages": [{"role": "user", "content": "a cat"}]}] * 2)
    from_file = cli(["predict", chat_run, "--file", dialogues, "--system", "Be short.", "--json"])
    records = [json.loads(line) for line in from_file.output.strip().splitlines()]
    assert [record["output"] for record in records] == [REPLY, REPLY]
    assert records[0]["messages"][0] == {"role": "system", "content": "Be short."}
    even = cli(["predict", chat_run, "--message", "a", "--message", "b"])
    assert even.exit_code == 2 and "odd number" in even.output


def test_chat_streams_replies_in_a_terminal_and_resets(chat_run):
    """`finetune chat` driven through a pseudo-terminal, as a person would type."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "finetune", "chat", str(chat_run)], stdin=terminal,
                               stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    seen = b""

    def read_until(text: str, timeout: float = 120) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while text.encode() not in seen:
            assert time.monotonic() < deadline, f"no {text!r} in {seen.decode(errors='replace')!r}"
            if select.select([controller], [], [], 1)[0]:
                try:
                    seen += os.read(controller, 4096)
                except OSError:  # the terminal closed: the process ended
                    assert text.encode() in seen, seen.decode(errors="replace")
        seen = seen[seen.index(text.encode()) + len(text):]

    try:
        read_until("you> ")
        os.write(controller, b"green bird\n")
        read_until(f"assistant> {REPLY}")
        read_until("you> ")
        os.write(controller, b"/reset\n")
        read_until("(new conversation)")
        os.write(controller, b"/exit\n")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)


OWN_TEMPLATE = ("{%- for message in messages %}{{- message['role'] + ': ' }}"
                "{%- if message['role'] == 'assistant' %}{% generation %}{{- message['content'] + eos_token }}"
                "{% endgeneration %}{%- else %}{{- message['content'] + '\n' }}{%- endif %}{%- endfor %}"
                "{%- if add_generation_prompt %}{{- 'assistant: ' }}{%- endif %}")


def test_lora_chat_runs_keep_their_template_through_export(tiny_chat_model, tmp_path, cli):
    pytest.importorskip("peft")
    from transformers import AutoTokenizer

    data = write_jsonl(tmp_path / "train.jsonl", fixed_reply_rows(16, seed=0))
    args = ["generate", "--model", tiny_chat_model, "--train-file", data, "--lora", "--max-steps", 2,
            "--batch-size", 8, "--max-length", 64, "--max-new-tokens", 4, "generation.num_samples=0"]
    refused = cli([*args, "--output-dir", tmp_path / "refused"])
    assert refused.exit_code == 2 and "LoRA would not train" in refused.output
    assert not (tmp_path / "refused").exists()
    template = tmp_path / "template.jinja"  # written with tokens the model has: its end-of-text ends a turn
    template.write_text(OWN_TEMPLATE, encoding="utf-8")
    trained = cli([*args, "--chat-template", template, "--output-dir", tmp_path / "run"])
    assert trained.exit_code == 0, trained.output
    exported = cli(["export", tmp_path / "run", "--merge"])
    assert exported.exit_code == 0, exported.output
    assert AutoTokenizer.from_pretrained(tmp_path / "run" / "merged").chat_template == OWN_TEMPLATE
    answered = cli(["predict", tmp_path / "run" / "merged", "--message", "red cat", "--json"])
    assert answered.exit_code == 0, answered.output
    assert json.loads(answered.output.strip().splitlines()[-1])["messages"][-1]["content"] == "red cat"


def test_a_merged_export_stops_at_the_end_of_a_turn(tiny_chat_model, tmp_path):
    """A LoRA run's merged model takes the base model's generation config: the end-of-turn token is added to it."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    from finetune.tasks.chat_template import save_stop_tokens

    tokenizer = chat_tokenizer(tiny_chat_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == tokenizer.eos_token_id
    save_stop_tokens(tmp_path)
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == [
        tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]


# ---- GSM8K ---------------------------------------------------------------------------------------------------------


def test_final_answers_are_taken_as_lm_eval_gsm8k_takes_them():
    assert strict_answer("so 16 - 3 = 13\n#### 1,300.") == "1,300."
    assert strict_answer("the answer is 13") == "[invalid]"
    assert flexible_answer("she pays $12.50, then 3 more: $15.") == "$15."
    references = ["Janet sells 9 eggs.\n#### 1300", "#### 18", "#### 7"]
    # strict: right, no "#### " (invalid), right; flexible (the last number): right, right, wrong ("8").
    predictions = ["Twice that is 1,300.\n#### 1,300.", "In all she makes $18.", "#### 7, not 8"]
    records: list[dict] = [{} for _ in predictions]
    scores = answer_scores(predictions, references, records)
    assert scores == {"exact_match_strict": pytest.approx(2 / 3), "exact_match_flexible": pytest.approx(2 / 3)}
    assert records[1] == {"answer": "18", "answer_strict": "[invalid]", "answer_flexible": "$18."}


@requires_data
def test_hh_rlhf_multi_turn_dialogues_train_with_the_default_template(tiny_chat_model, data_dir, tmp_path, cli):
    from transformers import AutoTokenizer

    from finetune.tasks.chat_template import encode_example

    source = data_dir / "chat" / "hh-rlhf-helpful-base" / "test_messages.jsonl"
    result = cli(["generate", "--model", tiny_chat_model, "--train-file", source, "--max-train-samples", 24,
                  "--max-length", 96, "--epochs", 1, "--batch-size", 8, "--max-new-tokens", 4,
                  "--output-dir", tmp_path / "run", "generation.num_samples=1", "train.logging_steps=1000"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_samples"] > 0 and metrics["eval_loss"] > 0
    conversation = json.loads(source.read_text(encoding="utf-8").splitlines()[1])["messages"]  # 4 turns
    assert len(conversation) >= 4
    saved = AutoTokenizer.from_pretrained(tmp_path / "run")
    trained = encode_example(chat_tokenizer(tiny_chat_model), conversation, 4096)
    assert trained is not None
    assert saved.apply_chat_template(conversation, tokenize=True)["input_ids"] == trained[0]


@requires_data
def test_gsm8k_trains_as_chat_and_scores_as_a_benchmark(tiny_chat_model, data_dir, tmp_path, cli):
    trained = cli(["generate", "--model", tiny_chat_model, "--format", "chat", "--train-file",
                   data_dir / "chat" / "gsm8k" / "train.jsonl", "--max-train-samples", 16, "--max-length", 448,
                   "--epochs", 1, "--batch-size", 8, "--max-new-tokens", 4, "--output-dir", tmp_path / "run",
                   "generation.num_samples=0", "train.logging_steps=1000"])
    assert trained.exit_code == 0, trained.output
    assert "format: chat" in (tmp_path / "run" / "recipe.yaml").read_text()
    scored = cli(["evaluate", tmp_path / "run", "--benchmark", "gsm8k", "--data-dir", data_dir, "--limit", 3,
                  "--output-dir", tmp_path / "results", "--set", "data.few_shot=1"])
    assert scored.exit_code == 0, scored.output
    results = next((tmp_path / "results").glob("*/results_*.json"))
    document = json.loads(results.read_text())
    result = document["results"]["gsm8k"]
    assert 0 <= result["exact_match_strict,none"] <= 1 and "exact_match_flexible,none" in result
    assert document["n-samples"]["gsm8k"] == {"original": 1319, "effective": 3}
    assert document["n-shot"]["gsm8k"] == 1
    assert result["exact_match_strict_stderr,none"] >= 0 and result["bleu_stderr,none"] >= 0  # bootstrap
    from finetune.config.loading import load_recipe
    from finetune.tasks import get_task

    train = data_dir / "chat" / "gsm8k" / "train.jsonl"
    few_shot = {"few_shot": 1, "few_shot_file": str(train)}
    task = get_task(load_recipe(base={"task": "generation"}, flags={"data": few_shot}))
    question = [{"role": "system", "content": "Solve it."}, {"role": "user", "content": "1+1?"}]
    shot = json.loads(train.read_text(encoding="utf-8").splitlines()[0])
    assert task._with_shots(question) == [question[0], {"role": "user", "content": shot["question"]},
                                          {"role": "assistant", "content": shot["answer"]}, question[1]]
    records = [json.loads(line) for line in next(results.parent.glob("samples_gsm8k_*.jsonl")).open()]
    assert records[0]["answer"] == "18" and records[0]["messages"][0]["content"].startswith("Janet")
