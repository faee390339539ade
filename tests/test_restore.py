"""`restore` (compressors/restore.py): at step 0 it hands the decoder exactly the `selector` method's kept
cache, in the harness and in training (padding and short contexts included); a checkpoint carries its
probe; the adapter changes the kept entries, not which. (Its overfitting test is test_gist_kv.py's.)"""

import dataclasses
import shutil

import pytest
import torch
from conftest import saved_probe

from compressions.api import saved_compressor
from compressions.compressors import build_compressor
from compressions.compressors.batches import collate, squad_features
from compressions.compressors.method import LearnedContext
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data.prompts import SquadPromptConfig
from compressions.data.synthetic import synthetic_squad
from compressions.errors import ConfigError
from compressions.methods import Target, build_method
from compressions.models import load_model
from compressions.models.generation import kept_cache_inputs
from compressions.training.lora import LoraSettings

M = 5
LORA = LoraSettings(r=2, target_modules=["k_proj", "v_proj"])


def _pipeline(tiny, folder, slots=0, shots=(), **options):
    """An adapter wraps the LLM it is given in place: those pipelines get their own tiny LLM, not the shared one."""
    llm, tokenizer = load_model("tiny-random-llama") if options.get("encoder_lora") else tiny
    weight = torch.randn(2 * llm.config.hidden_size, generator=torch.Generator().manual_seed(0))
    compressor = {"slots": slots, "scorer": saved_probe(folder, weight, [0, 2])}
    options.setdefault("prompt", SquadPromptConfig(shots=0))
    config = PipelineConfig(model="tiny-random-llama", arch="restore", budget=M, compressor=compressor, **options)
    return SoftPromptModel.create(config, llm, tokenizer, shots).eval()


def _selection(pipeline, folder, context, budget=M):
    method = build_method("selector", pipeline.tokenizer, budget, checkpoint=str(folder))
    return method.compress(context, "", budget, Target(pipeline.llm, pipeline.squad_prompt())).kv


def _perturb_adapter(pipeline):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in pipeline.llm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("shots", [0, 2])
def test_step_0_hands_the_harness_the_selectors_kept_cache(tiny, tmp_path, shots):
    """With solved examples in the prompt, the encoder and the decoder's prefix cache hold them as the harness's
    prompt does (the selection reads the hidden states after them)."""
    pipeline = _pipeline(tiny, tmp_path, encoder_lora=True, lora=LORA, prompt=SquadPromptConfig(shots=shots))  # the adapter starts at zero
    assert pipeline.prefix_ids() == saved_compressor(LearnedContext(pipeline)).layout.ids("?")[0]
    assert len(pipeline.shots) == shots and all(s.question in pipeline.tokenizer.decode(pipeline.prefix_ids()) for s in pipeline.shots)
    context = synthetic_squad(1, seed=3)[0].context
    kept, selected = LearnedContext(pipeline).compress(context, "Who?").kv, _selection(pipeline, tmp_path, context)
    assert torch.equal(kept.positions, selected.positions) and kept.next_position == selected.next_position
    torch.testing.assert_close(kept.keys, selected.keys, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kept.values, selected.values, atol=1e-5, rtol=1e-5)
    for (k, v), (k0, v0) in zip(kept.prefix, selected.prefix):
        torch.testing.assert_close((k, v), (k0, v0))
    _perturb_adapter(pipeline)  # training changes the kept entries, not which ones nor where
    adapted = LearnedContext(pipeline).compress(context, "Who?").kv
    assert torch.equal(adapted.positions, selected.positions) and not torch.allclose(adapted.keys, selected.keys, atol=1e-3)


def test_step_0_training_logits_are_the_selections_read_padding_and_short_contexts_included(tiny, tmp_path):
    pipeline = _pipeline(tiny, tmp_path)
    examples = synthetic_squad(3, seed=4)
    features = squad_features(pipeline, examples, progress=False)
    short = features[1].context_ids[: M - 2]  # fewer tokens than M: kept whole, the batch's spare entries unread
    features[1] = features[1].__class__(**{**features[1].__dict__, "context_ids": short, "compressor_ids": short})
    batch = collate(features, pipeline.tokenizer.pad_token_id, pipeline.slot_ids(), M)
    with torch.no_grad():
        logits = pipeline(batch)["logits"]  # (B, A, V), right-aligned answers
        for row, f in enumerate(features):
            context = pipeline.tokenizer.decode(f.context_ids)
            assert pipeline.tokenizer(context, add_special_tokens=False).input_ids == f.context_ids
            kept = _selection(pipeline, tmp_path, context)
            prompt = f.prefix_ids + [0] * kept.kept + f.suffix_ids + f.answer_ids
            inputs = kept_cache_inputs(pipeline.llm, [kept], [prompt], pipeline.tokenizer.pad_token_id)
            held = kept.length
            inputs |= {"input_ids": inputs["input_ids"][:, held:], "position_ids": inputs["position_ids"][:, held:]}
            reference = pipeline.llm(**inputs).logits[0]
            a = len(f.answer_ids)
            torch.testing.assert_close(logits[row, -a:], reference[-a - 1 : -1], atol=1e-5, rtol=1e-5)


def test_slots_come_after_the_context_and_the_selection_keeps_m_minus_r(tiny, tmp_path):
    pipeline = _pipeline(tiny, tmp_path, slots=2)
    context = synthetic_squad(1, seed=3)[0].context
    kept, selected = LearnedContext(pipeline).compress(context, "Who?").kv, _selection(pipeline, tmp_path, context, M - 2)
    p, c = len(pipeline.prefix_ids()), len(pipeline.context_ids(context))
    assert kept.kept == M and torch.equal(kept.positions[..., : M - 2], selected.positions)
    assert kept.positions[0, 0, M - 2 :].tolist() == [p + c, p + c + 1] and kept.next_position == p + c + 2
    torch.testing.assert_close(kept.keys[:, :, : M - 2], selected.keys, atol=1e-5, rtol=1e-5)


def test_a_checkpoint_carries_its_probe(tiny, tmp_path):
    (tmp_path / "probe").mkdir()
    shots = [dataclasses.replace(e, context=e.context[:40]) for e in synthetic_squad(2, seed=9)]  # a train split's, not the shipped ones
    pipeline = _pipeline(tiny, tmp_path / "probe", encoder_lora=True, lora=LORA, prompt=SquadPromptConfig(shots=2), shots=shots)
    _perturb_adapter(pipeline)
    context = synthetic_squad(1, seed=3)[0].context
    before = LearnedContext(pipeline).compress(context, "Who?").kv
    pipeline.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "probe")  # the selector folder is gone: the checkpoint alone decides the selection
    restored = SoftPromptModel.from_pretrained(tmp_path / "ckpt")
    assert restored.shots == tuple(shots) and restored.prefix_ids() == pipeline.prefix_ids()
    loaded = LearnedContext(restored).compress(context, "Who?").kv
    assert torch.equal(loaded.positions, before.positions)
    torch.testing.assert_close(loaded.keys, before.keys)
    with pytest.raises(ConfigError, match="train selector --out"):  # a new compressor needs the folder
        build_compressor("restore", num_tokens=M, input_size=8, scorer=str(tmp_path / "probe"))

