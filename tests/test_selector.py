"""The learned KV selection (compressors/selector.py) on the tiny model: its labels, its kept cache against a
hand-computed probe over one plain forward, training that fits the answers, and the saved folder read back
by the harness."""

import json

import pytest
import torch
from conftest import saved_probe

from compressions.api import load_compressor
from compressions.compressors.selector import (
    CONFIG,
    AnswerSelector,
    SelectorConfig,
    answer_token_labels,
    document_features,
    shape_scores,
    train_selector,
)  # fmt: skip
from compressions.data.documents import pack_documents
from compressions.data.prompts import SquadPrompt, SquadPromptConfig, prompt_part_ids, squad_prompt
from compressions.data.synthetic import synthetic_squad
from compressions.errors import CompressionsError
from compressions.methods import Target, build_method

PROMPT = SquadPromptConfig(shots=0)


def test_a_token_is_labelled_when_it_overlaps_any_answer():
    offsets = [(0, 3), (3, 8), (8, 9), (9, 15), (15, 20)]
    assert answer_token_labels(offsets, [(4, 9), (19, 25)]).tolist() == [0, 1, 1, 0, 1]
    assert answer_token_labels(offsets, []).tolist() == [0] * 5
    assert answer_token_labels(offsets, [(3, 3)]).tolist() == [0] * 5  # an empty span overlaps nothing


def test_kept_entries_are_the_probes_best_tokens_in_every_layer_and_head(tiny, tmp_path):
    model, tokenizer = tiny
    example, budget, layers = synthetic_squad(1, seed=3)[0], 7, [0, 2]
    d = model.config.hidden_size
    weight = torch.randn(2 * d, generator=torch.Generator().manual_seed(0))
    method = build_method("selector", tokenizer, budget, checkpoint=saved_probe(tmp_path, weight, layers))
    kept = method.compress(example.context, "", budget, Target(model, SquadPrompt(tokenizer, PROMPT)))
    # by hand: one plain forward of prefix + context, the probe over its hidden states, the top M positions
    prefix, _ = prompt_part_ids(tokenizer, squad_prompt(tokenizer, example.question, PROMPT))
    ids = tokenizer(example.context, add_special_tokens=False).input_ids
    p, c = len(prefix), len(ids)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prefix + ids]), use_cache=True, output_hidden_states=True)
    features = torch.cat([out.hidden_states[layer][0, p:] for layer in layers], dim=-1)
    positions = (features @ weight).topk(budget).indices.sort().values
    assert torch.equal(kept.kv.positions - p, positions.expand(*kept.kv.positions.shape[:2], budget))
    keys = torch.stack([layer.keys[0, :, p : p + c] for layer in out.cache.layers])
    torch.testing.assert_close(kept.kv.keys, keys[:, :, positions], rtol=1e-4, atol=1e-5)
    assert kept.n_tokens == budget and kept.kv.next_position == p + c


def test_a_probe_of_another_width_or_a_missing_folder_is_one_error(tiny, tmp_path):
    model, tokenizer = tiny
    with pytest.raises(CompressionsError, match="train selector"):
        build_method("selector", tokenizer, 4, checkpoint=str(tmp_path))
    method = build_method("selector", tokenizer, 4, checkpoint=saved_probe(tmp_path, torch.ones(5), [0]))
    with pytest.raises(CompressionsError, match="cannot read this model"):
        method.compress(synthetic_squad(1)[0].context, "", 4, Target(model, SquadPrompt(tokenizer, PROMPT)))


def test_training_fits_the_answer_tokens_and_the_harness_reads_the_folder(tiny, tmp_path):
    model, tokenizer = tiny
    examples = synthetic_squad(40, seed=5)
    config = SelectorConfig(model="tiny-random-llama", layers=[0, 1, 2], documents=128, steps=200, prompt=PROMPT, out=str(tmp_path / "sel"))
    summary = train_selector(config, examples, progress=False)
    assert summary["documents"] >= 5 and 0 < summary["answer_token_rate"] < 0.2
    # on its training documents the probe ranks answer tokens first far above their share
    method = load_compressor("selector", 4, model="tiny-random-llama", prompt=PROMPT, checkpoint=config.out)
    target = method.target
    hits = total = 0
    spans = {}
    for e in pack_documents(examples, tokenizer, 128)[0]:
        spans.setdefault(e.context, []).append((e.answer_starts[0], e.answer_starts[0] + len(e.answers[0])))
    assert len(spans) == summary["documents"]
    for context, answer_spans in spans.items():
        features, offsets = document_features(model, tokenizer, target, context, config.layers)
        labels = answer_token_labels(offsets, answer_spans)
        k = int(labels.sum())
        with torch.no_grad():
            hits += labels[method.method.probe(features).topk(k).indices].sum().item()
        total += k
    assert hits / total > 3 * summary["answer_token_rate"]
    assert json.loads((tmp_path / "sel" / CONFIG).read_text())["config"]["layers"] == [0, 1, 2]
    assert isinstance(method.method, AnswerSelector)
    assert len(method.answer([examples[0].context], [examples[0].question], max_new_tokens=2)) == 1


def test_pooling_keeps_a_likely_answers_neighbours_and_keep_first_the_documents_start():
    scores = torch.tensor([0.0, 5.0, 1.0, -2.0, -3.0, 4.0, -1.0])
    assert shape_scores(scores).topk(3).indices.sort().values.tolist() == [1, 2, 5]
    # pool 3: tokens 0-2 pool 5.0 (1 first, its own), 4-6 pool 4.0 (5 first); 3 pools 1.0
    assert shape_scores(scores, pool=3).argsort(descending=True).tolist() == [1, 2, 0, 5, 6, 4, 3]
    assert shape_scores(scores, keep_first=2).topk(3).indices.sort().values.tolist() == [0, 1, 5]
    assert shape_scores(scores, keep_first=2, pool=3).topk(4).indices.sort().values.tolist() == [0, 1, 2, 5]
    with pytest.raises(CompressionsError, match="odd"):
        AnswerSelector(None, "unused", pool=2)
