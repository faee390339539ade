"""KV-cache methods (methods/kv_cache.py) on the tiny model: the kept cache against a hand-computed
selection from one plain forward, exact budgets, and answers from a cache that keeps everything equal to
answers from the full context."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from compressions.cli.main import main
from compressions.data.prompts import SquadPrompt, SquadPromptConfig, prompt_part_ids, squad_prompt
from compressions.data.synthetic import synthetic_squad
from compressions.errors import CompressionsError
from compressions.evaluation.efficiency import kv_bytes
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad
from compressions.methods import METHODS, KVCompressor, Target, build_method
from compressions.methods.kvzip import REPEAT_PROMPT
from compressions.models.generation import generate_greedy, kept_cache_inputs
from compressions.models.loading import eager_attention
from compressions.training.lora import add_adapter

KV_METHODS = sorted(name for name, entry in METHODS.items() if isinstance(entry.target, type) and issubclass(entry.target, KVCompressor))
PROMPT = SquadPromptConfig(shots=0)  # the harness's prompt without solved examples


def _target(model, tokenizer):
    """What a KV method is given when it compresses: the model that reads, and the prompt around the context."""
    return Target(model, SquadPrompt(tokenizer, PROMPT))


def _ids(tokenizer, example):
    """(prefix ids, context ids, ids after the context) of an example's prompt."""
    prefix, after = prompt_part_ids(tokenizer, squad_prompt(tokenizer, example.question, PROMPT))
    return prefix, tokenizer(example.context, add_special_tokens=False).input_ids, after


@torch.no_grad()
def _full_forward(model, ids, attentions=False):
    """One plain forward of a whole prompt: its cache, and its attention weights when asked."""
    if not attentions:
        return model(input_ids=torch.tensor([ids]), use_cache=True), None
    with eager_attention(model):
        out = model(input_ids=torch.tensor([ids]), use_cache=True, output_attentions=True)
    return out, torch.stack([a[0] for a in out.attentions])  # (L, heads, T, T)


@torch.no_grad()
def _logits(model, pad_id, **inputs):
    out = model.generate(
        **inputs, max_new_tokens=3, do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=pad_id
    )  # fmt: skip
    return torch.stack(out.logits, dim=1)  # (B, 3, V)


def test_every_kv_method_is_registered_and_marked():
    assert KV_METHODS == ["expected_attention", "knorm", "kvzip", "snapkv", "streaming", "tova"]
    assert [name for name in KV_METHODS if METHODS[name].target.question_aware] == ["snapkv"]


@pytest.mark.parametrize("name", KV_METHODS)
def test_keeping_every_entry_gives_the_full_context_logits(tiny, name):
    """A budget of at least the context keeps every entry: a batch read from the kept caches (padded to
    the longest) gives each prompt's full-context logits."""
    model, tokenizer = tiny
    examples = synthetic_squad(3, seed=2)
    method = build_method(name, tokenizer, 500)
    kept = method.compress_many([e.context for e in examples], [e.question for e in examples], 500, target=_target(model, tokenizer))
    prompts = [p + c + a for p, c, a in (_ids(tokenizer, e) for e in examples)]
    assert [k.token_ids for k in kept] == [_ids(tokenizer, e)[1] for e in examples]
    assert len({k.kv.length for k in kept}) > 1  # rows of different lengths: the batch pads the caches
    pad = tokenizer.pad_token_id
    batched = _logits(model, pad, **kept_cache_inputs(model, [k.kv for k in kept], prompts, pad))
    for row, prompt in enumerate(prompts):
        ids = torch.tensor([prompt])
        full = _logits(model, pad, input_ids=ids, attention_mask=torch.ones_like(ids))
        torch.testing.assert_close(batched[row : row + 1], full, rtol=1e-4, atol=1e-5)
    greedy = generate_greedy(model, tokenizer, prompts, 4, batch_size=2, progress=False)
    assert generate_greedy(model, tokenizer, prompts, 4, batch_size=2, progress=False, caches=[k.kv for k in kept]) == greedy


def _hand_selection(name, model, tokenizer, example, budget):
    """(positions kept in the context (L, n_kv, M), the full forward's keys and values (L, n_kv, C, hd))."""
    prefix, ids, after = _ids(tokenizer, example)
    p, c = len(prefix), len(ids)
    if name == "kvzip":  # what the model reads after the context is the repeat prompt and the context again
        after = tokenizer(REPEAT_PROMPT, add_special_tokens=False).input_ids + ids
    out, attention = _full_forward(model, prefix + ids + after, attentions=name in ("snapkv", "tova", "kvzip"))
    keys = torch.stack([layer.keys[0, :, p : p + c] for layer in out.cache.layers])
    values = torch.stack([layer.values[0, :, p : p + c] for layer in out.cache.layers])
    layers, n_kv = keys.shape[:2]
    if name == "knorm":  # the smallest key norms of each head
        positions = keys.norm(dim=-1).argsort(dim=-1)[..., :budget]
    elif name == "streaming":  # 4 sinks, then the last entries; every head alike
        positions = torch.tensor([*range(4), *range(c - budget + 4, c)]).expand(layers, n_kv, budget)
    elif name == "snapkv":  # the question's votes, summed over each KV head's query heads, pooled over 7
        votes = attention[:, :, p + c :, p : p + c].sum(dim=2)  # (L, heads, C)
        votes = votes.reshape(layers, n_kv, -1, c).sum(dim=2).reshape(-1, 1, c)
        pooled = F.conv1d(votes, torch.full((1, 1, 7), 1 / 7), padding=3).reshape(layers, n_kv, c)
        positions = pooled.argsort(dim=-1, descending=True)[..., :budget]
    elif name == "kvzip":  # the largest attention from any reconstruction query, over each KV head's query heads
        top = attention[:, :, p + c :, p : p + c].amax(dim=2)  # (L, heads, C)
        positions = top.reshape(layers, n_kv, -1, c).amax(dim=2).argsort(dim=-1, descending=True)[..., :budget]
    elif name == "expected_attention":
        positions = _expected_attention(model, prefix + ids, out, values, p, c).argsort(dim=-1, descending=True)[..., :budget]
    else:  # tova: the last context token's attention, averaged over the layer's heads
        last = attention[:, :, p + c - 1, p : p + c].mean(dim=1)  # (L, C)
        positions = last.argsort(dim=-1, descending=True)[:, None, :budget].expand(layers, n_kv, budget)
    return positions.sort(dim=-1).values, keys, values, p


@torch.no_grad()
def _expected_attention(model, ids, out, values, p, c, future=512):
    """(L, n_kv, C): each context entry's expected attention, the long way: the context's queries from the
    layer's own projections, their mean and covariance (torch.cov), the rotary rotation at every one of the next
    `future` positions written out as a matrix (transformers' rotation of each basis vector) and averaged."""
    hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    decoder = model.get_decoder()
    rows = []
    for layer, block in enumerate(decoder.layers):
        attn = block.self_attn
        d = attn.head_dim
        queries = attn.q_proj(block.input_layernorm(hidden[layer][0, p : p + c])).view(c, -1, d)  # (C, H, d)
        cos, sin = decoder.rotary_emb(queries, torch.arange(p + c, p + c + future)[None])
        basis = torch.eye(d).expand(future, d, d)[:, :, None]  # (future, d basis vectors, 1, d)
        turned = apply_rotary_pos_emb(basis, basis, cos[0][:, None], sin[0][:, None])[0][:, :, 0]  # row j: R(t) e_j
        rotation = turned.transpose(1, 2).mean(0)
        keys = out.cache.layers[layer].keys[0, :, p : p + c]  # (n_kv, C, d), rotated at their positions
        group = queries.shape[1] // keys.shape[0]
        per_head = []
        for head in range(queries.shape[1]):
            q, k = queries[:, head], keys[head // group]
            mean, spread = rotation @ q.mean(0), rotation @ torch.cov(q.T, correction=0) @ rotation.T
            logits = attn.scaling * k @ mean + attn.scaling**2 / 2 * ((k @ spread) * k).sum(-1)
            per_head.append(logits.softmax(-1))
        scores = torch.stack(per_head).view(keys.shape[0], group, c).mean(1)
        rows.append(scores * values[layer].norm(dim=-1))
    return torch.stack(rows)


@pytest.mark.parametrize("name", KV_METHODS)
def test_kept_cache_is_the_hand_computed_selection(tiny, name):
    model, tokenizer = tiny
    example, budget = synthetic_squad(1, seed=3)[0], 10
    kept = build_method(name, tokenizer, budget).compress(example.context, example.question, budget, _target(model, tokenizer))
    positions, keys, values, p = _hand_selection(name, model, tokenizer, example, budget)
    assert torch.equal(kept.kv.positions - p, positions)
    gather = positions[..., None].expand(-1, -1, -1, keys.shape[-1])
    torch.testing.assert_close(kept.kv.keys, keys.gather(2, gather), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kept.kv.values, values.gather(2, gather), rtol=1e-4, atol=1e-5)
    assert kept.kv.next_position == p + len(_ids(tokenizer, example)[1])
    if name in ("knorm", "snapkv", "kvzip", "expected_attention"):  # per-head selection: the heads do not all keep the same entries
        assert len({tuple(row) for row in kept.kv.positions.flatten(0, 1).tolist()}) > 1


@pytest.mark.parametrize("name", KV_METHODS)
def test_the_budget_is_exact_per_layer_and_head(tiny, name):
    model, tokenizer = tiny
    example = synthetic_squad(1, seed=4)[0]
    prefix, ids, _ = _ids(tokenizer, example)
    method, target = build_method(name, tokenizer, 1), _target(model, tokenizer)
    for budget in (1, 5, len(ids) - 1, len(ids), len(ids) + 3):
        kept = method.compress(example.context, example.question, budget, target)
        k = min(budget, len(ids))
        assert kept.n_tokens == k and kept.kv.kept == k and kept.kv.length == len(prefix) + k
        assert kept.kv.keys.shape[2] == kept.kv.values.shape[2] == kept.kv.positions.shape[2] == k
        rows = kept.kv.positions.flatten(0, 1)
        assert all(len(set(row)) == k for row in rows.tolist())  # no entry kept twice
        assert rows.min() >= len(prefix) and rows.max() < len(prefix) + len(ids)


def test_kv_methods_compress_with_the_reader_adapter_on(tiny):
    """Unlike text methods, the kept entries are the reader's own cache: the adapter must act."""
    model, tokenizer = tiny
    wrapped = add_adapter(copy.deepcopy(model), LoraConfig(r=4, target_modules=["k_proj", "q_proj"], init_lora_weights=False))
    example = synthetic_squad(1)[0]
    snapkv = build_method("snapkv", tokenizer, 6)
    base = snapkv.compress(example.context, example.question, 6, _target(model, tokenizer))
    read = snapkv.compress(example.context, example.question, 6, _target(wrapped, tokenizer))
    assert not torch.allclose(base.kv.keys, read.kv.keys)
    assert wrapped.config._attn_implementation == model.config._attn_implementation == "sdpa"  # restored after scoring


@pytest.mark.parametrize(
    "options, message",
    [
        ({"name": "snapkv", "kernel": 4}, "kernel must be odd"),
        ({"name": "streaming", "sinks": -1}, "sinks must be >= 0"),
        ({"name": "tova", "window": 3}, "has no option window"),
        ({"name": "kvzip", "segment": 0}, "segment must be >= 1"),
        ({"name": "expected_attention", "future": 0}, "future must be >= 1"),
    ],
)
def test_bad_options_are_clear_errors(tiny, options, message):
    with pytest.raises(CompressionsError, match=message):
        build_method(options.pop("name"), tiny[1], 4, **options)


def test_a_kv_method_needs_the_target_it_keeps_entries_of(tiny):
    with pytest.raises(CompressionsError, match="keeps entries of the target model's own KV cache: pass target="):
        build_method("knorm", tiny[1], 4).compress("Some context here.", "q", 4)


def test_harness_records_kept_entries_bytes_and_prefill_time(tiny, tmp_path):
    model, tokenizer = tiny
    examples, shots = synthetic_squad(4), synthetic_squad(4, seed=1)
    config = SquadEvalConfig(
        model="tiny-random-llama", method="knorm", budget=6, max_new_tokens=2, batch_size=3, compressed_cache=str(tmp_path / "c"),
        out=str(tmp_path / "run"),
    )  # fmt: skip
    metrics = evaluate_squad(config, examples, shots, model, tokenizer, progress=False)
    assert metrics["mean_kept_tokens"] == 6 and metrics["compression_ratio"] == metrics["mean_context_tokens"] / 6
    assert metrics["mean_context_kv_bytes"] == kv_bytes(model.config, model.dtype, 6)
    assert metrics["question_aware"] is False and metrics["compressions_reused"] == 0 and not (tmp_path / "c").exists()
    assert 0 < metrics["compress_seconds_per_example"] <= metrics["seconds_per_example"]
    sample = json.loads((tmp_path / "run" / "sample_predictions.json").read_text())[0]
    assert examples[0].question in sample["prompt"] and examples[0].context not in sample["prompt"]


def test_cli_eval_snapkv(tmp_path, capsys):
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in synthetic_squad(8)
    ]
    data = tmp_path / "squad.json"  # two articles: train (train_articles=1), then validation
    data.write_text(json.dumps({"data": [{"title": "A", "paragraphs": paragraphs[:4]}, {"title": "B", "paragraphs": paragraphs[4:]}]}))
    argv = ["eval", "squad", "--method", "snapkv", "--budget", "4", "--model", "tiny-random-llama", "--data", str(data)]
    argv += ["--method-option", "kernel=3", "--out", str(tmp_path / "run"), "train_articles=1", "max_new_tokens=3"]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["method"] == "snapkv" and metrics["n"] == 4 and metrics["mean_kept_tokens"] == 4
    assert metrics["question_aware"] is True and metrics["mean_context_kv_bytes"] > 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method_options"] == {"kernel": 3}
    assert "| snapkv | 4 |" in capsys.readouterr().out


def test_kvzip_reads_its_reconstruction_in_chunks_and_never_the_question(tiny):
    """Chunked scoring keeps the same entries as one pass over the reconstruction, and the question (the
    prompt after the context) changes nothing: one compression serves every question about a document."""
    model, tokenizer = tiny
    example = synthetic_squad(1, seed=3)[0]
    target = _target(model, tokenizer)
    one_pass = build_method("kvzip", tokenizer, 10, chunk=10_000).compress(example.context, example.question, 10, target)
    chunked = build_method("kvzip", tokenizer, 10, chunk=3).compress(example.context, example.question, 10, target)
    other = build_method("kvzip", tokenizer, 10, chunk=3).compress(example.context, "Something else entirely?", 10, target)
    assert torch.equal(one_pass.kv.positions, chunked.kv.positions) and torch.equal(chunked.kv.positions, other.kv.positions)
    torch.testing.assert_close(chunked.kv.keys, other.kv.keys)
    assert METHODS["kvzip"].target.question_aware is False


def test_kvzip_rebuilds_a_long_context_segment_by_segment(tiny):
    """Past `segment` tokens each segment is read after its own cue on the context's cache alone, at the
    positions right after the context, and scores only its own entries: the hand computation reads each
    (prefix + context + cue + segment) in one plain forward."""
    model, tokenizer = tiny
    example, budget, segment, overlap = synthetic_squad(1, seed=3)[0], 10, 7, 2
    method = build_method("kvzip", tokenizer, budget, segment=segment, overlap=overlap, chunk=4)
    kept = method.compress(example.context, example.question, budget, _target(model, tokenizer))
    prefix, ids, _ = _ids(tokenizer, example)
    p, c = len(prefix), len(ids)
    assert c > 2 * segment  # three segments at least
    tops = []
    for begin in range(0, c, segment):
        part = ids[begin : begin + segment]
        cue = method.repeat_ids if begin == 0 else method.continue_ids + ids[begin - overlap : begin]
        _, attention = _full_forward(model, prefix + ids + cue + part, attentions=True)
        tops.append(attention[:, :, p + c :, p + begin : p + begin + len(part)].amax(dim=2))  # (L, heads, segment)
    top = torch.cat(tops, dim=-1)
    layers, n_kv = kept.kv.positions.shape[:2]
    positions = top.reshape(layers, n_kv, -1, c).amax(dim=2).argsort(dim=-1, descending=True)[..., :budget]
    assert torch.equal(kept.kv.positions - p, positions.sort(dim=-1).values)
    whole = build_method("kvzip", tokenizer, budget).compress(example.context, example.question, budget, _target(model, tokenizer))
    assert not torch.equal(whole.kv.positions, kept.kv.positions)  # segments change what is kept
