"""Gist models on the tiny random Llama: batched masked forwards, gist caching, saved caches."""

import pytest
import torch
from transformers import DynamicCache

from compressions.data.alpaca import AlpacaExample
from compressions.errors import CompressionsError
from compressions.gist.cache import GistCache, compress, generate
from compressions.gist.data import GistCollator, prompt_head, prompt_ids, training_example
from compressions.gist.masks import float_mask_dtype, gist_mask, mask_for
from compressions.gist.tokens import GIST_TOKEN, add_gist_token
from compressions.models import load_model
from compressions.models.generation import position_ids
from compressions.models.quantize import int8_bytes

EXAMPLES = [
    AlpacaExample("Name the colour of the river.", "Kalomir kept a fox.", "red"),
    AlpacaExample("Say it again, louder, with the name of the town in it please.", "", "Torvi was born in 1801."),
    AlpacaExample("Count the words.", "The stone bridge over the garden.", "six"),
]


def _gist_model(seed=0, attn="sdpa"):
    """A fresh tiny model with <GIST>, its weights shaken so that greedy outputs depend on the prompt
    (the initial random model repeats one token whatever it reads)."""
    model, tokenizer = load_model("tiny-random-llama", attn_implementation=attn)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return model, tokenizer, add_gist_token(model, tokenizer)


@pytest.fixture(scope="module")
def gist_tiny():
    return _gist_model()


def _masked_greedy(model, ids, gist_id, condition, n):
    """Reference: argmax over the full sequence with the condition's mask, one token at a time."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            x = torch.tensor([seq])
            ones = torch.ones_like(x)
            mask = mask_for(model, gist_mask(x, gist_id, ones, condition))
            seq.append(int(model(input_ids=x, attention_mask=mask, position_ids=position_ids(ones)).logits[0, -1].argmax()))
    return seq[len(ids) :]


def test_gist_token_rows_start_at_the_mean():
    model, tokenizer = load_model("tiny-random-llama")
    old = model.get_input_embeddings().weight.detach().clone()
    gist_id = add_gist_token(model, tokenizer)
    assert gist_id == old.shape[0] and len(tokenizer) == old.shape[0] + 1
    weight = model.get_input_embeddings().weight
    assert torch.equal(weight[:-1], old)
    torch.testing.assert_close(weight[gist_id], old.mean(0))
    assert add_gist_token(model, tokenizer) == gist_id and len(tokenizer) == gist_id + 1  # once only
    assert tokenizer.convert_ids_to_tokens([gist_id]) == [GIST_TOKEN]


def test_untied_output_head_row_also_starts_at_the_mean():
    from transformers import LlamaForCausalLM

    base, tokenizer = load_model("tiny-random-llama")
    config = base.config
    config.tie_word_embeddings = False
    model = LlamaForCausalLM(config)
    head = model.get_output_embeddings().weight.detach().clone()
    gist_id = add_gist_token(model, tokenizer)
    torch.testing.assert_close(model.get_output_embeddings().weight[gist_id], head.mean(0))
    assert not torch.equal(model.get_output_embeddings().weight[gist_id], model.get_input_embeddings().weight[gist_id])


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("condition", ["gist", "pos_control", "neg_control"])
def test_padded_batch_gives_each_example_its_unbatched_logits(attn, condition):
    model, tokenizer, gist_id = _gist_model(attn=attn)
    collate = GistCollator(tokenizer.pad_token_id, gist_id, condition, float_mask_dtype(model))
    rows = [training_example(tokenizer, e, 2, gist_id) for e in EXAMPLES]
    batch = collate(rows)
    assert batch["attention_mask"].dtype == (torch.float32 if attn == "eager" else torch.bool)
    with torch.no_grad():
        batched = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]).logits
        for i, row in enumerate(rows):
            one = collate([row])
            single = model(input_ids=one["input_ids"], attention_mask=one["attention_mask"], position_ids=one["position_ids"]).logits[0]
            torch.testing.assert_close(batched[i, -len(row["input_ids"]) :], single, atol=2e-5, rtol=1e-4)


def _check_cache_matches_masked_sequence(model, tokenizer, gist_id, num_gist, condition, fmt="plain", n=6):
    keep = "gist" if condition == "gist" else "none"
    cache = compress(model, tokenizer, [e.instruction for e in EXAMPLES], num_gist, fmt, keep=keep)
    assert cache.kept == (num_gist if keep == "gist" else 0) and cache.size == len(EXAMPLES)
    generated = generate(model, tokenizer, cache, [e.input for e in EXAMPLES], max_new_tokens=n)
    assert len({tuple(g) for g in generated}) == len(EXAMPLES)  # outputs depend on what was read
    for example, tokens in zip(EXAMPLES, generated):
        reference = _masked_greedy(model, prompt_ids(tokenizer, example, num_gist, gist_id, fmt), gist_id, condition, n)
        assert tokens == reference[: len(tokens)] and len(tokens) >= 1


@pytest.mark.parametrize("num_gist", [1, 2])
@pytest.mark.parametrize("condition", ["gist", "neg_control"])
def test_generation_from_a_gist_cache_equals_the_masked_full_sequence(gist_tiny, num_gist, condition):
    _check_cache_matches_masked_sequence(*gist_tiny, num_gist, condition)


def test_gist_cache_in_the_chat_format(gist_tiny):
    _check_cache_matches_masked_sequence(*gist_tiny, 2, "gist", "chat")


@pytest.mark.slow
def test_generation_from_a_gist_cache_on_the_embedded_model():
    model, tokenizer = load_model("smollm2-135m")
    _check_cache_matches_masked_sequence(model, tokenizer, add_gist_token(model, tokenizer), 1, "gist", n=8)


def test_gist_kv_and_positions_match_the_full_prefill(gist_tiny):
    model, tokenizer, gist_id = gist_tiny
    example = EXAMPLES[1]  # no input: only "Output:" follows the gists
    ids = prompt_ids(tokenizer, example, 2, gist_id)
    cache = compress(model, tokenizer, [example.instruction], 2)
    head = cache.next_positions[0].item()
    assert head == len(prompt_head(tokenizer, example.instruction, 2, gist_id)) and ids[head - 2 : head] == [gist_id] * 2
    full = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]), cache=full, use_cache=True)
    for layer in range(model.config.num_hidden_layers):
        torch.testing.assert_close(cache.keys[layer, 0], full.layers[layer].keys[0, :, head - 2 : head], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cache.values[layer, 0], full.layers[layer].values[0, :, head - 2 : head], atol=1e-5, rtol=1e-5)


def test_batched_caching_equals_unbatched(gist_tiny):
    model, tokenizer, _ = gist_tiny
    instructions = [e.instruction for e in EXAMPLES]  # three different lengths
    batched = compress(model, tokenizer, instructions, 2, batch_size=3)
    inputs = [e.input for e in EXAMPLES]
    together = generate(model, tokenizer, batched, inputs, max_new_tokens=5, batch_size=3)
    for i, (instruction, text) in enumerate(zip(instructions, inputs)):
        alone = compress(model, tokenizer, [instruction], 2)
        torch.testing.assert_close(batched.keys[:, i], alone.keys[:, 0], atol=1e-5, rtol=1e-5)
        assert batched.next_positions[i] == alone.next_positions[0]
        assert generate(model, tokenizer, alone, [text], max_new_tokens=5) == [together[i]]


def test_one_cache_serves_many_inputs_and_sampling_is_seeded(gist_tiny):
    model, tokenizer, _ = gist_tiny
    cache = compress(model, tokenizer, [EXAMPLES[0].instruction], 1)
    inputs = [e.input for e in EXAMPLES]
    many = cache.select([0, 0, 0])
    assert generate(model, tokenizer, many, inputs, max_new_tokens=4) == [
        generate(model, tokenizer, cache, [text], max_new_tokens=4)[0] for text in inputs
    ]
    first = generate(model, tokenizer, many, inputs, max_new_tokens=4, do_sample=True, seed=3)
    assert first == generate(model, tokenizer, many, inputs, max_new_tokens=4, do_sample=True, seed=3)
    other = compress(model, tokenizer, [EXAMPLES[2].instruction], 1).select([0, 0, 0])
    assert generate(model, tokenizer, other, inputs, max_new_tokens=4) != generate(model, tokenizer, many, inputs, max_new_tokens=4)


def test_saved_cache_generates_the_same_tokens(gist_tiny, tmp_path):
    model, tokenizer, _ = gist_tiny
    cache = compress(model, tokenizer, [e.instruction for e in EXAMPLES], 2)
    cache.save(tmp_path / "cache.safetensors")
    loaded = GistCache.load(tmp_path / "cache.safetensors")
    assert loaded.num_gist == 2 and loaded.model_fingerprint == cache.model_fingerprint
    assert torch.equal(loaded.keys, cache.keys) and torch.equal(loaded.next_positions, cache.next_positions)
    inputs = [e.input for e in EXAMPLES]
    assert generate(model, tokenizer, loaded, inputs, max_new_tokens=5) == generate(model, tokenizer, cache, inputs, max_new_tokens=5)


def test_int8_cache_is_about_a_quarter_of_the_bytes_and_close(gist_tiny, tmp_path):
    model, tokenizer, _ = gist_tiny
    cache = compress(model, tokenizer, [e.instruction for e in EXAMPLES], 2)
    cache.save(tmp_path / "fp32.safetensors")
    cache.save(tmp_path / "int8.safetensors", int8=True)
    loaded = GistCache.load(tmp_path / "int8.safetensors")
    assert loaded.keys.dtype == cache.keys.dtype and torch.equal(loaded.keys, cache.int8().keys)
    scale = cache.keys.abs().amax(-1, keepdim=True) / 127  # one scale per token and head
    assert ((loaded.keys - cache.keys).abs() <= scale / 2 + 1e-7).all()
    data = 2 * cache.keys.numel() * 4  # fp32 keys and values
    assert 2 * int8_bytes(cache.keys) == data * (1 / 4 + 1 / cache.keys.shape[-1])  # int8 + one fp32 scale per vector
    assert (tmp_path / "fp32.safetensors").stat().st_size - (tmp_path / "int8.safetensors").stat().st_size > 0.6 * data


def test_cache_from_another_model_or_tokenizer_is_refused(gist_tiny, tmp_path):
    model, tokenizer, _ = gist_tiny
    cache = compress(model, tokenizer, [EXAMPLES[0].instruction], 1)
    other, other_tokenizer, _ = _gist_model(seed=1)
    with pytest.raises(CompressionsError, match="made by model"):
        generate(other, other_tokenizer, cache, [""], max_new_tokens=2)
    tuned, tuned_tokenizer, _ = _gist_model()  # the same model but for one weight of the last layer
    with torch.no_grad():
        tuned.model.layers[-1].mlp.down_proj.weight[0, 0] += 1e-3
    with pytest.raises(CompressionsError, match="made by model"):
        generate(tuned, tuned_tokenizer, cache, [""], max_new_tokens=2)
    assert generate(*_gist_model()[:2], cache, [""], max_new_tokens=2)  # an identical copy is accepted
    cache.model_fingerprint = compress(other, other_tokenizer, ["x"], 1).model_fingerprint
    other_tokenizer.add_tokens(["<extra>"])  # same model, a tokenizer that differs by one token
    with pytest.raises(CompressionsError, match="another tokenizer"):
        generate(other, other_tokenizer, cache, [""], max_new_tokens=2)
    (tmp_path / "junk.safetensors").write_bytes(b"not a cache")
    with pytest.raises(CompressionsError, match="not a gist cache"):
        GistCache.load(tmp_path / "junk.safetensors")


def test_a_model_without_gist_token_cannot_compress(tiny):
    model, tokenizer = tiny
    with pytest.raises(CompressionsError, match="no <GIST> token"):
        compress(model, tokenizer, ["x"], 1)
