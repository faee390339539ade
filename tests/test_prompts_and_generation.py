import pytest
import torch

from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data.prompts import SquadPromptConfig, squad_prompt
from compressions.data.synthetic import synthetic_squad
from compressions.evaluation.reading import first_line
from compressions.models import load_model
from compressions.models.generation import (
    cached_head_inputs,
    common_prefix_length,
    copy_cache,
    generate_greedy,
    left_pad,
    prefill,
)
from compressions.reader.train import reader_example

FORMATS = [SquadPromptConfig("chat"), SquadPromptConfig("chat", anchor=""), SquadPromptConfig("completion")]


def _check_parts_tokenize_like_the_whole(tokenizer, config, shots):
    for e in synthetic_squad(5):
        parts = squad_prompt(tokenizer, e.question, config, shots)
        whole = tokenizer(parts.prefix + e.context + parts.suffix).input_ids
        split = (
            tokenizer(parts.prefix).input_ids
            + tokenizer(e.context, add_special_tokens=False).input_ids
            + tokenizer(parts.suffix, add_special_tokens=False).input_ids
        )
        assert split == whole
        assert e.question in parts.suffix and e.context not in parts.prefix


@pytest.mark.parametrize("config", FORMATS, ids=lambda c: f"{c.format}-{c.anchor or 'none'}")
def test_prompt_parts_tokenize_like_the_whole_prompt(tiny, config):
    _check_parts_tokenize_like_the_whole(tiny[1], config, synthetic_squad(2, seed=9))


@pytest.mark.slow
@pytest.mark.parametrize("config", FORMATS, ids=lambda c: f"{c.format}-{c.anchor or 'none'}")
def test_prompt_parts_tokenize_like_the_whole_prompt_smollm2(smollm2, config):
    _check_parts_tokenize_like_the_whole(smollm2[1], config, synthetic_squad(2, seed=9))


def test_completion_prompt_layout(tiny):
    shot = synthetic_squad(1, seed=5)[0]
    parts = squad_prompt(tiny[1], "Who?", SquadPromptConfig("completion", instruction="Read.", shots=1), [shot])
    assert parts.prefix == f"Read.\n\nContext:\n{shot.context}\nQuestion: {shot.question}\nAnswer: {shot.answers[0]}\n\nContext:\n"
    assert parts.suffix == "\nQuestion: Who?\nAnswer:"


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batched_generation_equals_one_at_a_time(tiny):
    model, tokenizer = tiny
    prompts = [tokenizer(e.context).input_ids[: 5 + 7 * i] for i, e in enumerate(synthetic_squad(4))]
    batched = generate_greedy(model, tokenizer, prompts, 6, batch_size=4, stop_at_newline=False, progress=False)
    single = [generate_greedy(model, tokenizer, [p], 6, batch_size=1, stop_at_newline=False, progress=False)[0] for p in prompts]
    assert batched == single
    # and the reference: plain argmax over a full forward, step by step, for the longest prompt
    ids = torch.tensor([prompts[-1]])
    for _ in range(len(single[-1])):
        ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
    assert ids[0, len(prompts[-1]) :].tolist()[: len(single[-1])] == single[-1]


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps a token to read
    assert common_prefix_length([[7, 1], [8, 1]]) == 0


def test_shared_prefix_generation_equals_full_prefill(tiny):
    """Prompts with a common head (instruction, few-shot examples): the head prefilled once and copied
    into every batch's cache gives the tokens of prefilling each whole prompt, and of argmax decoding."""
    model, tokenizer = tiny
    head = tokenizer(" ".join(e.context for e in synthetic_squad(2))).input_ids
    tails = [tokenizer(e.question, add_special_tokens=False).input_ids[: 3 + 2 * i] for i, e in enumerate(synthetic_squad(5))]
    prompts = [head + t for t in tails]
    assert common_prefix_length(prompts) >= len(head)
    kwargs = dict(max_new_tokens=6, batch_size=3, stop_at_newline=False, progress=False)
    shared = generate_greedy(model, tokenizer, prompts, share_prefix=True, **kwargs)
    assert shared == generate_greedy(model, tokenizer, prompts, share_prefix=False, **kwargs)
    for prompt, new in zip(prompts, shared):
        ids = torch.tensor([prompt])
        for _ in range(len(new)):
            ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
        assert ids[0, len(prompt) :].tolist() == new


def test_cached_head_logits_equal_full_prefill(tiny):
    """The head's KV copied into a batch cache, tails read at their own positions: last-token logits of
    each whole prompt (a logit check: the random tiny model's argmax barely depends on positions)."""
    model, tokenizer = tiny
    head = tokenizer(synthetic_squad(1)[0].context).input_ids
    tails = [[11, 12, 13], [14], [15, 16]]
    ids, mask, positions = cached_head_inputs(torch.tensor([head] * 3), tails, tokenizer.pad_token_id, torch.full((3,), len(head)))
    assert positions[1, -1].item() == len(head) and positions[0, -3:].tolist() == [len(head) + i for i in range(3)]
    cache = copy_cache(model, prefill(model, head), 3)
    with torch.no_grad():
        logits = model(input_ids=ids[:, len(head) :], attention_mask=mask, position_ids=positions[:, len(head) :], cache=cache).logits
        for row, tail in enumerate(tails):
            full = model(torch.tensor([head + tail])).logits[0, -1]
            torch.testing.assert_close(logits[row, -1], full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("anchor", ["Answer:", "", None, "A: "])
@pytest.mark.parametrize("fmt", ["completion", "chat"])
def test_reader_and_compressors_train_the_same_answer_tokens(tiny, anchor, fmt):
    """The reader's training rows and the compressors' batches end in the same answer ids for every anchor."""
    _, tokenizer = tiny
    prompt = SquadPromptConfig(format=fmt, anchor=anchor, shots=0)
    example = synthetic_squad(1, seed=9)[0]
    row = reader_example(tokenizer, example, prompt)
    pipeline = SoftPromptModel.create(PipelineConfig(model="tiny-random-llama", arch="conv", budget=2, prompt=prompt), *load_model("tiny-random-llama"))
    answer = pipeline.answer_ids(example.answers[0])
    assert row["input_ids"][-len(answer) :] == answer and row["labels"][-len(answer) - 1] == -100
    assert tokenizer.decode(answer, skip_special_tokens=True).strip() == example.answers[0]


@pytest.mark.parametrize(
    "reply, kept",
    [
        ("\n\nParis\nLondon", "\n\nParis\n"),  # a leading blank line does not end the answer
        (" \nParis is big\nLondon", " \nParis is big\n"),
        ("Paris\n\nLondon", "Paris\n"),
        ("Paris", "Paris"),  # no newline within max_new_tokens
    ],
)
def test_generation_stops_at_the_end_of_the_first_non_blank_line(reply, kept):
    """The model is made to say `reply` token by token (a hook on its head); generation stops after the
    first line that holds text, so an answer that opens with a newline is not cut to nothing."""
    model, tokenizer = load_model("tiny-random-llama")
    script = tokenizer(reply, add_special_tokens=False).input_ids
    step = iter(range(100))

    def say(module, inputs, logits):
        forced = torch.full_like(logits[:, -1], -1e4)
        forced[:, script[min(next(step), len(script) - 1)]] = 1e4
        return torch.cat([logits[:, :-1], forced[:, None]], dim=1)

    model.lm_head.register_forward_hook(say)
    new = generate_greedy(model, tokenizer, [[5, 6, 7]], max_new_tokens=len(script), progress=False)[0]
    assert tokenizer.decode(new) == kept and first_line(kept) == kept.strip()
