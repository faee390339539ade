import json

import pytest
import torch

from compressions.errors import ConfigError
from compressions.models.loading import load_model
from compressions.training.config import TrainConfig
from compressions.training.loop import NonFiniteLossError, train


def _lm_data(n=16, length=12):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 200, (length,), generator=g) for _ in range(n)]


def _collate(rows):
    return {"input_ids": torch.stack(rows)}


def _lm_loss(module, batch):
    out = module(input_ids=batch["input_ids"], labels=batch["input_ids"])
    return out.loss, {}


def _fit(batch_size, micro, steps=2, lr=1e-3, **kw):
    model, _ = load_model("tiny-random-llama")
    config = TrainConfig(learning_rate=lr, max_steps=steps, batch_size=batch_size, micro_batch_size=micro, warmup_ratio=0, **kw)
    history = train(model, [{"params": model.parameters()}], _lm_loss, _lm_data(), _collate, config, progress=False)
    return model, history


def test_loss_goes_down_and_every_parameter_moves(tmp_path):
    model, _ = load_model("tiny-random-llama")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(learning_rate=3e-3, max_steps=30, batch_size=4, micro_batch_size=4, warmup_ratio=0.1)
    history = train(model, [{"params": model.parameters()}], _lm_loss, _lm_data(), _collate, config, tmp_path / "log.jsonl", progress=False)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-6)  # cosine ends at zero


def test_accumulation_1x8_equals_8x1():
    full, h_full = _fit(batch_size=8, micro=8)
    accumulated, h_acc = _fit(batch_size=8, micro=1)
    assert h_full[0]["loss"] == pytest.approx(h_acc[0]["loss"], rel=1e-5)
    for a, b in zip(full.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_non_finite_loss_stops_with_a_clear_error():
    model, _ = load_model("tiny-random-llama")

    def bad_loss(module, batch):
        return module(input_ids=batch["input_ids"]).logits.sum() * float("nan"), {}

    config = TrainConfig(max_steps=2, batch_size=2, micro_batch_size=2)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 1"):
        train(model, [{"params": model.parameters()}], bad_loss, _lm_data(), _collate, config, progress=False)


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ConfigError, match="multiple of"):
        TrainConfig(batch_size=6, micro_batch_size=4).validate()


def test_lengths_group_micro_batches_of_similar_length():
    lengths = torch.randperm(64, generator=torch.Generator().manual_seed(0)).add(2).tolist()
    dataset = [torch.randint(3, 200, (n,)) for n in lengths]

    def padding(**kw) -> tuple[int, list[int]]:
        """Padding tokens over one epoch of micro-batches of 4, and the lengths seen."""
        seen = []

        def collate(rows):
            seen.append([len(r) for r in rows])
            return {"input_ids": torch.stack([r[:2] for r in rows])}

        model, _ = load_model("tiny-random-llama")
        config = TrainConfig(max_steps=16, batch_size=4, micro_batch_size=4, warmup_ratio=0)
        train(model, [{"params": model.parameters()}], _lm_loss, dataset, collate, config, progress=False, **kw)
        return sum(4 * max(b) - sum(b) for b in seen), sorted(n for b in seen for n in b)

    grouped, seen = padding(lengths=lengths)
    shuffled, _ = padding()
    assert seen == sorted(lengths)  # every example once per epoch
    assert grouped < shuffled / 3
