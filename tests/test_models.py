import time

import pytest
import torch

from compressions.errors import ModelNotFoundError
from compressions.models import load_model
from compressions.models.loading import smollm2_safetensors_dir


def test_tiny_model_is_seeded_and_shares_its_tokenizer(tiny):
    model, tokenizer = tiny
    again, _ = load_model("tiny-random-llama")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    ids = tokenizer("Kalomir was a baker.").input_ids
    assert tokenizer.decode(ids) == "Kalomir was a baker."
    assert len(ids) < len("Kalomir was a baker.") / 2  # real merges, not bytes


def test_saved_model_loads_as_the_reference_forward_without_hub_kernels(tiny, tmp_path):
    """transformers 5.25 kernelizes every from_pretrained model when `kernels` is installed (its dependency): on
    CUDA that fetches Hub code at model.train() and fails offline. load_model turns it off."""
    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path))
    assert not loaded.use_kernels
    loaded.train()
    assert not loaded.use_kernels and loaded.kernels_mode is None
    ids = torch.tensor([tokenizer("Kalomir was a baker.").input_ids])
    with torch.no_grad():
        assert torch.equal(loaded.eval()(ids).logits, model(ids).logits)


def test_missing_model_is_one_line_naming_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        load_model(str(tmp_path / "no-such-model"))
    message = str(err.value)
    assert "\n" not in message
    assert "aliases" in message and "local directory" in message and "hub" in message


@pytest.mark.slow
def test_embedded_model_converts_once_then_reads_the_cache(tmp_path):
    start = time.perf_counter()
    first = smollm2_safetensors_dir(tmp_path)
    convert_seconds = time.perf_counter() - start
    stamp = (first / "config.json").stat().st_mtime_ns
    # a leftover temp dir of a killed conversion is never taken for the cache
    assert not [p for p in tmp_path.joinpath("models").iterdir() if p.name.startswith(".convert-")]
    start = time.perf_counter()
    assert smollm2_safetensors_dir(tmp_path) == first
    assert time.perf_counter() - start < 0.1 * convert_seconds
    assert (first / "config.json").stat().st_mtime_ns == stamp
    model, tokenizer = load_model("smollm2-135m", cache_dir=tmp_path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert len(tokenizer) == 49_152 and tokenizer.chat_template


@pytest.mark.slow
def test_killed_conversion_leaves_no_cache(tmp_path, monkeypatch):
    import compressions.models.loading as loading

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # what a kill midway looks like from inside

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        smollm2_safetensors_dir(tmp_path)
    assert list((tmp_path / "models").iterdir()) == []
