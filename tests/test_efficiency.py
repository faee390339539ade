"""Efficiency accounting on the tiny model: KV bytes against real cache tensors, FLOPs of the three prefill
paths, and that every path computes the prompt's real logits (not timings)."""

import pytest
import torch
from transformers import DynamicCache

from compressions.data.alpaca import AlpacaExample
from compressions.evaluation.efficiency import (
    amortised,
    compression_ratio,
    count_flops,
    kv_bytes,
    median_seconds,
    peak_memory_bytes,
)
from compressions.gist.cache import compress, generate
from compressions.gist.data import prompt_head, prompt_ids, prompt_tail
from compressions.gist.masks import gist_mask
from compressions.gist.prefill import full_prefill, gist_prefill, instruction_prefill
from compressions.gist.tokens import add_gist_token
from compressions.models import load_model
from compressions.models.generation import position_ids

EXAMPLES = [
    AlpacaExample("Name the colour of the river in the old town by the hill.", "Kalomir kept a fox.", "red"),
    AlpacaExample("Say it again.", "", "Torvi was born in 1801."),
    AlpacaExample("Count the words.", "The stone bridge over the garden.", "six"),
]


@pytest.fixture(scope="module")
def gist_tiny():
    """The tiny model with <GIST>, its weights shaken so that greedy outputs depend on the prompt."""
    model, tokenizer = load_model("tiny-random-llama")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return model, tokenizer, add_gist_token(model, tokenizer)


def _nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kv_bytes_formula_matches_the_tensors_of_a_dynamic_cache(dtype):
    model, tokenizer = load_model("tiny-random-llama", dtype=dtype)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.randint(3, 500, (1, 37)), cache=cache, use_cache=True)
    real = _nbytes([t for layer in cache.layers for t in (layer.keys, layer.values)])
    assert kv_bytes(model.config, model.dtype, 37) == real > 0


def test_kv_bytes_formula_matches_a_gist_cache_and_the_ratio_is_instruction_over_k(gist_tiny):
    model, tokenizer, gist_id = gist_tiny
    cache = compress(model, tokenizer, [e.instruction for e in EXAMPLES], 2)
    assert kv_bytes(model.config, model.dtype, 2) * len(EXAMPLES) == _nbytes([cache.keys, cache.values])
    lengths = [len(prompt_head(tokenizer, e.instruction, 0, None)) for e in EXAMPLES]
    assert compression_ratio(lengths, 2) == pytest.approx(sum(lengths) / 2 / len(lengths))
    assert compression_ratio([26], 1) == 26.0 and amortised(10.0, 1.0, 10) == 2.0


def test_every_prefill_path_gives_the_prompts_own_last_logits(gist_tiny):
    model, tokenizer, gist_id = gist_tiny
    full = full_prefill(model, tokenizer, EXAMPLES)
    instruction = instruction_prefill(model, tokenizer, EXAMPLES)
    gist = gist_prefill(model, tokenizer, compress(model, tokenizer, [e.instruction for e in EXAMPLES], 2), [e.input for e in EXAMPLES])
    assert torch.equal(instruction.input_ids, gist.input_ids)  # the same post-instruction tokens
    for i, example in enumerate(EXAMPLES):
        alone = torch.tensor([prompt_ids(tokenizer, example, 0, None)])
        with torch.no_grad():
            expected = model(input_ids=alone).logits[0, -1]
        torch.testing.assert_close(full(model)[i, -1], expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(instruction(model)[i, -1], expected, atol=1e-4, rtol=1e-4)
        ids = torch.tensor([prompt_ids(tokenizer, example, 2, gist_id)])
        ones = torch.ones_like(ids)
        with torch.no_grad():
            masked = model(input_ids=ids, attention_mask=gist_mask(ids, gist_id, ones), position_ids=position_ids(ones)).logits
        torch.testing.assert_close(gist(model)[i, -1], masked[0, -1], atol=1e-4, rtol=1e-4)
    assert instruction.cache.get_seq_length() == instruction.attention_mask.shape[1] - instruction.input_ids.shape[1]


def test_gist_prefill_costs_less_than_the_full_prompt_and_differs_from_instruction_caching_by_attention(gist_tiny):
    model, tokenizer, _ = gist_tiny
    example, k = EXAMPLES[0], 2
    full_path = full_prefill(model, tokenizer, [example])
    gist_path = gist_prefill(model, tokenizer, compress(model, tokenizer, [example.instruction], k), [example.input])
    instruction_path = instruction_prefill(model, tokenizer, [example])
    full, gist, instruction = (count_flops(model, lambda p=p: p(model)) for p in (full_path, gist_path, instruction_path))
    assert gist < instruction < full
    # Same linear layers on the same T tail tokens; only QK^T and AV read P - K more cached keys.
    config, T = model.config, gist_path.input_ids.shape[1]
    P = len(prompt_head(tokenizer, example.instruction, 0, None))
    head_dim = config.hidden_size // config.num_attention_heads
    assert T == len(prompt_tail(tokenizer, example.input, 0))
    assert instruction - gist == 2 * 2 * config.num_hidden_layers * config.num_attention_heads * T * (P - k) * head_dim


def test_flops_are_counted_with_eager_attention_and_the_implementation_is_restored(gist_tiny):
    model, tokenizer, _ = gist_tiny
    path = full_prefill(model, tokenizer, EXAMPLES[:1])
    assert model.config._attn_implementation == "sdpa"
    counted = count_flops(model, lambda: path(model))
    assert model.config._attn_implementation == "sdpa"
    eager, eager_tokenizer = load_model("tiny-random-llama", attn_implementation="eager")
    add_gist_token(eager, eager_tokenizer)  # the same vocabulary (output head) as the gist model
    assert counted == count_flops(eager, lambda: full_prefill(eager, tokenizer, EXAMPLES[:1])(eager)) > 0


def test_time_and_memory_helpers_measure_a_call():
    calls = []
    assert median_seconds(lambda: calls.append(1), min_run_time=0.01) > 0 and len(calls) > 1  # warm-up + runs
    used, what = peak_memory_bytes(lambda: torch.ones(1000), "cpu")
    assert used >= 0 and "ru_maxrss" in what


def test_generation_is_the_same_from_every_path(gist_tiny):
    model, tokenizer, _ = gist_tiny
    pad = tokenizer.pad_token_id
    full = full_prefill(model, tokenizer, EXAMPLES).generate(model, 6, pad)
    instruction_path = instruction_prefill(model, tokenizer, EXAMPLES)
    assert full.shape == (len(EXAMPLES), 6) and len({tuple(row) for row in full.tolist()}) == len(EXAMPLES)
    assert torch.equal(instruction_path.generate(model, 6, pad), full)
    assert torch.equal(instruction_path.generate(model, 6, pad), full)  # the cache was cropped back: reusable
    cache = compress(model, tokenizer, [e.instruction for e in EXAMPLES], 2)
    gist = gist_prefill(model, tokenizer, cache, [e.input for e in EXAMPLES]).generate(model, 6, pad)
    for row, tokens in zip(gist.tolist(), generate(model, tokenizer, cache, [e.input for e in EXAMPLES], max_new_tokens=6)):
        assert row[: len(tokens)] == tokens  # the project's gist generation (which may stop at EOS)


def test_flops_include_attention_outside_the_model(gist_tiny):
    """A compressor's nn.MultiheadAttention runs CPU sdpa, which the counter would miss: counting uses its math path."""
    model = gist_tiny[0]
    attention = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    query, context = torch.randn(1, 8, 64), torch.randn(1, 100, 64)
    with torch.no_grad():
        counted = count_flops(model, lambda: attention(query, context, context, need_weights=False))
    projections = 2 * 64 * 64 * (8 + 100 + 100 + 8)  # q, k, v and output projections
    assert counted == projections + 2 * 2 * 8 * 100 * 64  # + scores and weighted values
