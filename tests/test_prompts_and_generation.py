import pytest
import torch

from compressions.data.prompts import SquadPromptConfig, squad_prompt
from compressions.data.synthetic import synthetic_squad
from compressions.models.generation import generate_greedy, left_pad

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
