"""`gist_kv` (compressors/gist_kv.py): the decoder holding the gists' K/V computes what a full forward
with the gist mask computes, in training and in the harness's generation; padding changes nothing; and
8 synthetic examples overfit to exact answers through the cache alone."""

import contextlib
import dataclasses

import pytest
import torch
from conftest import learned_answers, steerable_tiny

from compressions.compressors.batches import collate, right_pad, squad_features
from compressions.compressors.gist_kv import window_ends
from compressions.compressors.method import LearnedContext
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.compressors.pretraining import pretraining_features
from compressions.compressors.train import CompressorTrainConfig
from compressions.config import load_config
from compressions.data.synthetic import synthetic_job_questions, synthetic_squad
from compressions.experiments.compressor_run import train_compressor
from compressions.gist.masks import mask_for
from compressions.models import load_model
from compressions.models.generation import kept_cache_inputs
from compressions.training.lora import LoraSettings

M = 3


def _pipeline(llm=None, **options):
    llm, tokenizer = llm or load_model("tiny-random-llama")
    config = PipelineConfig(model="tiny-random-llama", arch="gist_kv", budget=M, **options)
    torch.manual_seed(0)
    pipeline = SoftPromptModel.create(config, llm, tokenizer).eval()
    with torch.no_grad():  # gists that differ from the prefix tokens they start from
        pipeline.compressor.offset.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    return pipeline


def _gist_masked_logits(pipeline, prefix, context, suffix):
    """Logits of one full forward over `prefix + context + gists + suffix` (layout `after`), or with gist i
    right after the i-th of M windows of the context (`spread`), in which the suffix sees the prompt prefix
    and the gists but not the context (all the compressor reads): the Gist paper's mask, written out by hand."""
    llm = pipeline.llm
    p, n = len(prefix), len(context)
    embed = llm.get_input_embeddings()
    if pipeline.compressor.config.layout == "after":
        body = context + [0] * M
        gist_at = [n + i for i in range(M)]
        copies = [context[i * n // M] if n < M else context[i] for i in range(M)]
    else:  # window i = context[i n // M : (i + 1) n // M], its gist after it, copying its last token
        body, gist_at, copies, start = [], [], [], 0
        for i in range(M):
            end = (i + 1) * n // M
            body += context[start:end]
            gist_at.append(len(body))
            body.append(0)
            copies.append(context[max(end - 1, 0)])
            start = end
    ids = torch.tensor([prefix + body + suffix])
    embeds = embed(ids).clone()
    columns = torch.tensor(gist_at) + p
    embeds[0, columns] = embed(torch.tensor(copies)) + pipeline.compressor.offset
    t = ids.shape[1]
    allowed = torch.ones(t, t, dtype=torch.bool).tril()
    text = torch.zeros(t, dtype=torch.bool)
    text[p : p + len(body)] = True
    text[columns] = False  # the context's columns: not the prefix, not a gist
    allowed[p + len(body) :, text] = False
    return llm(inputs_embeds=embeds, attention_mask=mask_for(llm, allowed[None, None])).logits[0]


@pytest.mark.parametrize("question_aware,layout", [(False, "after"), (True, "after"), (False, "spread"), (True, "spread")])
def test_training_logits_equal_the_gist_masked_full_forward(tiny, question_aware, layout):
    """Question-aware, the encoder reads the question after the context (before the gists, or in their
    windows), and the decoder reads it again after the gists."""
    pipeline = _pipeline(tiny, question_aware=question_aware, compressor={"layout": layout})
    examples = synthetic_squad(3, seed=4)
    features = squad_features(pipeline, examples, progress=False)
    short = features[1].context_ids[:2]  # shorter than M
    features[1] = dataclasses.replace(features[1], context_ids=short, compressor_ids=short + features[1].compressor_ids[len(features[1].context_ids) :])
    assert (features[0].compressor_ids == features[0].context_ids + features[0].suffix_ids) == question_aware
    _assert_training_logits_are_masked_forward(pipeline, features)


def test_one_adapter_for_encoder_and_decoder_is_the_adapted_models_masked_forward():
    """With `use_lora` and `encoder_lora` the one adapter encodes and decodes, as the Gist paper's one model:
    the training logits are the adapted LLM's gist-masked full forward, also after the adapter changes (the
    decoder's prompt-prefix cache is not kept from before), and the harness reads with the adapter on."""
    lora = LoraSettings(r=2, target_modules=["q_proj", "v_proj"])
    pipeline = _pipeline(use_lora=True, encoder_lora=True, lora=lora, compressor={"layout": "spread"})
    features = squad_features(pipeline, synthetic_squad(2, seed=4), progress=False)
    _assert_training_logits_are_masked_forward(pipeline, features)  # LoRA B is zero: the plain model
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in pipeline.llm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        reference = _gist_masked_logits(pipeline, features[0].prefix_ids, features[0].compressor_ids, features[0].suffix_ids)
        with pipeline.llm.disable_adapter():
            plain = _gist_masked_logits(pipeline, features[0].prefix_ids, features[0].compressor_ids, features[0].suffix_ids)
    assert not torch.allclose(reference, plain, atol=1e-3)  # the adapter does change the forward
    _assert_training_logits_are_masked_forward(pipeline, features)
    assert isinstance(LearnedContext(pipeline).reading(), contextlib.nullcontext)


@pytest.mark.parametrize("task", ["autoencode", "continue"])
def test_pretraining_logits_equal_the_gist_masked_full_forward(tiny, task):
    """Regenerating a paragraph, or continuing it, from its gists alone: every target token's logits."""
    pipeline = _pipeline(tiny)
    texts = [e.context for e in synthetic_squad(3, seed=4)]
    _assert_training_logits_are_masked_forward(pipeline, pretraining_features(pipeline, texts, task))


def _assert_training_logits_are_masked_forward(pipeline, features):
    batch = collate(features, pipeline.tokenizer.pad_token_id, pipeline.slot_ids(), M)
    with torch.no_grad():
        logits = pipeline(batch)["logits"]  # (B, A, V), right-aligned answers
        for row, f in enumerate(features):
            reference = _gist_masked_logits(pipeline, f.prefix_ids, f.compressor_ids, f.suffix_ids + f.answer_ids)
            a = len(f.answer_ids)
            torch.testing.assert_close(logits[row, -a:], reference[-a - 1 : -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", ["after", "spread"])
def test_cache_is_padding_invariant(tiny, layout):
    pipeline = _perturbed_encoder(compressor={"layout": layout})
    ids, mask = right_pad([list(range(10, 19)), list(range(30, 35))], tiny[1].pad_token_id)
    with torch.no_grad():
        both = pipeline.compressor(pipeline, ids, mask)
        alone = pipeline.compressor(pipeline, ids[1:, :5], mask[1:, :5])
    read_after = [9 if layout == "after" else (j + 1) * 9 // M for j in range(M)]  # context tokens before gist j
    assert both.positions.tolist() == [[len(pipeline.prefix_ids()) + t + j for j, t in enumerate(read_after)], alone.positions[0].tolist()]
    for layer in (0, -1):
        torch.testing.assert_close(both.keys[layer][1], alone.keys[layer][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.values[layer][1], alone.values[layer][0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both.keys[-1][0], both.keys[-1][1], atol=1e-3)


@pytest.mark.parametrize("layout", ["after", "spread"])
def test_harness_reads_the_cache_as_the_gist_masked_forward(tiny, layout):
    """What LearnedContext hands the harness (a KeptCache), read as generation reads KV methods, gives the
    masked full forward's next-token logits."""
    pipeline = _pipeline(tiny, compressor={"layout": layout})
    example = synthetic_squad(1, seed=5)[0]
    compressed = LearnedContext(pipeline).compress(example.context, example.question)
    assert compressed.embeddings is None and compressed.kv.kept == M and compressed.n_tokens == M
    prefix, suffix = pipeline.prompt_ids(example.question)
    prompt = prefix + compressed.token_ids + suffix
    inputs = kept_cache_inputs(tiny[0], [compressed.kv], [prompt], tiny[1].pad_token_id)
    held = compressed.kv.length  # generate skips the ids the cache holds; a plain forward is given the rest
    inputs |= {"input_ids": inputs["input_ids"][:, held:], "position_ids": inputs["position_ids"][:, held:]}
    with torch.no_grad():
        last = tiny[0](**inputs).logits[0, -1]
        reference = _gist_masked_logits(pipeline, prefix, pipeline.context_ids(example.context), suffix)[-1]
    torch.testing.assert_close(last, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch, options", [("gist_kv", []), ("restore", ["pipeline.compressor={slots: 2}"])])
def test_overfits_eight_examples_through_the_cache(tmp_path, arch, options):
    """The decoder is frozen and its prompt is the same for the 8 questions but for the question, so exact
    answers that change when the caches are swapped mean the answers travelled through the K/V entries (the
    gists'; restore's kept entries and slots)."""
    examples = synthetic_job_questions()  # one question: only the context, through the gists, tells the answers apart
    # 500 steps: 300 ended at answer CE 0.63 with one answer wrong on some CPUs' float kernels (500: 0.44)
    config = load_config(
        CompressorTrainConfig,
        overrides=[
            "pipeline.model=tiny-random-llama", f"pipeline.arch={arch}", "pipeline.budget=4", "pipeline.encoder_lora=true", *options,
            "pipeline.lora.r=16", "pipeline.lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]",
            "train.max_steps=500", "train.batch_size=8", "train.micro_batch_size=8", "train.learning_rate=3e-3",
            "lora_learning_rate=3e-3", "loss.distillation=0", "loss.scheduled_sampling=0", "loss.contrastive=0",
            "loss.anti_collapse=0", "eval_limit=0", f"out={tmp_path / 'run'}",
        ],
    )  # fmt: skip
    llm, tokenizer = steerable_tiny()
    train_compressor(config, examples, examples, llm, tokenizer, progress=False)
    pipeline = SoftPromptModel.from_pretrained(tmp_path / "run" / "checkpoint", llm, tokenizer)
    answers, swapped = learned_answers(pipeline, examples), learned_answers(pipeline, examples, shift=1)
    decoded = [tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers]
    assert decoded == [e.answers[0] for e in examples]
    assert sum(a != b for a, b in zip(answers, swapped)) >= 6


def test_question_aware_compresses_each_question(tiny):
    pipeline = _pipeline(tiny, question_aware=True)
    example = synthetic_squad(1, seed=5)[0]
    method = LearnedContext(pipeline)
    assert method.question_aware
    one, other, again = method.compress_many([example.context] * 3, [example.question, "Who?", example.question], M)
    assert torch.equal(one.kv.keys, again.kv.keys) and not torch.allclose(one.kv.keys, other.kv.keys)
    assert one.kv.next_position == len(pipeline.prefix_ids()) + len(pipeline.compressor_ids(example.context, example.question)) + M


def test_unknown_layout_is_a_config_error():
    from compressions.compressors import build_compressor
    from compressions.errors import ConfigError

    with pytest.raises(ConfigError, match="compressor.layout must be one of"):
        build_compressor("gist_kv", num_tokens=M, input_size=8, layout="diagonal")


def test_separate_adapters_compress_and_answer_apart_and_are_both_saved_and_restored(tmp_path):
    """`separate_adapters`: the compressing adapter alone changes the gists, the answering one alone changes how
    they are read; one step's gradients reach both; a checkpoint brings both back."""
    lora = LoraSettings(r=2, target_modules=["q_proj", "v_proj"])
    pipeline = _pipeline(use_lora=True, encoder_lora=True, separate_adapters=True, lora=lora).train()
    features = squad_features(pipeline, synthetic_squad(2, seed=4), progress=False)
    batch = collate(features, pipeline.tokenizer.pad_token_id, pipeline.slot_ids(), M)
    pipeline(batch)["logits"].logsumexp(-1).mean().backward()
    # every layer's v_proj of both adapters (the last layer's encoder q_proj feeds nothing the decoder reads)
    grads = {name: p.grad for name, p in pipeline.llm.named_parameters() if "v_proj.lora_B" in name}
    assert {n.rsplit(".", 2)[-2] for n in grads} == {"default", "encoder"} and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    pipeline.eval()

    def perturb(adapter):
        g = torch.Generator().manual_seed(len(adapter))
        with torch.no_grad():
            for name, p in pipeline.llm.named_parameters():
                if f"lora_B.{adapter}." in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)

    def outputs(p):
        with torch.no_grad():
            gist = p.compressor(p, batch["context_ids"], batch["context_mask"].bool())
            return gist.keys[-1], p(batch)["logits"]

    keys, logits = outputs(pipeline)
    perturb("default")  # answering
    keys_1, logits_1 = outputs(pipeline)
    torch.testing.assert_close(keys_1, keys)
    assert not torch.allclose(logits_1, logits, atol=1e-4)
    perturb("encoder")  # compressing
    keys_2, logits_2 = outputs(pipeline)
    assert not torch.allclose(keys_2, keys, atol=1e-4)
    pipeline.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapter" / "encoder" / "adapter_model.safetensors").is_file()
    loaded = SoftPromptModel.from_pretrained(tmp_path / "ckpt")
    keys_3, logits_3 = outputs(loaded)
    torch.testing.assert_close(keys_3, keys_2)
    torch.testing.assert_close(logits_3, logits_2)
    fresh = _pipeline(use_lora=True, encoder_lora=True, separate_adapters=True, lora=lora).eval()
    fresh.load_weights(tmp_path / "ckpt")  # training on from a checkpoint restores both too
    torch.testing.assert_close(outputs(fresh)[1], logits_2)


def test_separate_adapters_need_both_adapters():
    from compressions.errors import ConfigError

    with pytest.raises(ConfigError, match="separate_adapters: needs both use_lora"):
        PipelineConfig(arch="gist_kv", encoder_lora=True, separate_adapters=True).validate()


def _perturbed_encoder(**options):
    """gist_kv whose encoder adapter changes the keys and values (so a test sees whether it is applied)."""
    pipeline = _pipeline(encoder_lora=True, lora=LoraSettings(r=2, target_modules=["k_proj", "v_proj"]), **options)
    with torch.no_grad():
        for name, p in pipeline.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return pipeline


def test_layer_entries_are_the_llms_own_keys_and_values(tiny):
    """`layer_entries` (what the shift computes) on a layer's input hidden states gives that layer's cache."""
    from compressions.models.generation import position_ids

    pipeline = _perturbed_encoder()
    ids, mask = right_pad([list(range(10, 19)), list(range(30, 35))], tiny[1].pad_token_id)
    with torch.no_grad():
        cache, states = pipeline.encode_cache(pipeline.embed(ids), mask.bool(), all_layers=True)
        for layer in range(len(cache.layers)):
            keys, values = pipeline.layer_entries(layer, states[layer], position_ids(mask))
            real = mask.bool()[:, None, :, None]  # padding's entries are never read
            torch.testing.assert_close(keys * real, cache.layers[layer].keys * real, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(values * real, cache.layers[layer].values * real, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", ["after", "spread"])
def test_shift_hands_layer_l_the_entries_of_the_hidden_states_after_it(tiny, layout, monkeypatch):
    shifted, plain = (_perturbed_encoder(compressor={"layout": layout, "shift": s}) for s in (True, False))
    seen = {}
    encode = shifted.encode_cache

    def spy(embeds, mask, all_layers=False):
        cache, states = encode(embeds, mask, all_layers)
        seen.update(states=states)
        return cache, states

    monkeypatch.setattr(shifted, "encode_cache", spy)
    ids, mask = right_pad([list(range(10, 19)), list(range(30, 35))], tiny[1].pad_token_id)
    with torch.no_grad():
        got, want = shifted.compressor(shifted, ids, mask), plain.compressor(plain, ids, mask)
        states = seen["states"]
        if layout == "after":  # the gists' columns in the encoder's input: the prompt prefix, the context, the gists
            columns = torch.arange(M).expand(len(ids), -1) + ids.shape[1]
        else:
            columns = window_ends(mask.sum(1), M) + torch.arange(M)
        columns = columns + len(shifted.prefix_ids())
        assert len(states) == len(got.keys) + 1  # the embeddings, each layer's input, the normed output
        for layer in range(len(got.keys) - 1):
            hidden = states[layer + 1].gather(1, columns[..., None].expand(-1, -1, states[0].shape[-1]))
            keys, values = shifted.layer_entries(layer, hidden, got.positions)
            torch.testing.assert_close(got.keys[layer], keys)
            torch.testing.assert_close(got.values[layer], values)
            assert not torch.allclose(got.keys[layer], want.keys[layer], atol=1e-4)
    torch.testing.assert_close(got.keys[-1], want.keys[-1])  # the top layer keeps its own
    torch.testing.assert_close(got.hidden, want.hidden)
    torch.testing.assert_close(got.positions, want.positions)


def test_reconstruction_is_each_window_read_alone_after_its_gists(tiny):
    """`reconstruction_ce` over a padded batch of drawn windows equals, row by row, the decoder holding the
    prompt prefix and gists 1..i of that context alone, reading the cue then window i's tokens."""
    import torch.nn.functional as F
    from transformers import DynamicCache

    from compressions.compressors.pipeline import RECONSTRUCTION_CUE

    pipeline = _perturbed_encoder(compressor={"layout": "spread"})
    contexts = [list(range(10, 21)), list(range(30, 37))]
    ids, mask = right_pad(contexts, tiny[1].pad_token_id)
    with torch.no_grad():
        entries = pipeline.compressor(pipeline, ids, mask)
        loss = pipeline.reconstruction_ce(entries, ids, mask, 3, torch.Generator().manual_seed(7))
        ends = window_ends(mask.sum(1), M)
        draws = torch.multinomial(torch.ones(2, M), 3, replacement=True, generator=torch.Generator().manual_seed(7))
        cue = tiny[1](RECONSTRUCTION_CUE, add_special_tokens=False).input_ids
        total, count = 0.0, 0
        for c, context in enumerate(contexts):
            alone = pipeline.compressor(pipeline, torch.tensor([context]), torch.ones(1, len(context), dtype=torch.long))
            for i in draws[c].tolist():
                tokens = context[(ends[c, i - 1] if i else 0) : ends[c, i]]
                cache = DynamicCache(config=tiny[0].config)
                for layer, (k, v) in enumerate(pipeline.decoder_prefix()):
                    cache.update(torch.cat([k, alone.keys[layer][:, :, : i + 1]], 2), torch.cat([v, alone.values[layer][:, :, : i + 1]], 2), layer)
                start = int(alone.positions[0, i]) + 1
                read = torch.tensor([cue + tokens])
                logits = tiny[0](input_ids=read, cache=cache, position_ids=torch.arange(start, start + read.shape[1])[None]).logits[0]
                total += F.cross_entropy(logits[len(cue) - 1 : -1], torch.tensor(tokens), reduction="sum").item()
                count += len(tokens)
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_reconstruction_trains_the_gists_and_needs_spread_gist_kv():
    from compressions.compressors.objective import CompressorObjective
    from compressions.errors import ConfigError

    pipeline = _pipeline(compressor={"layout": "spread"}).train()
    features = squad_features(pipeline, synthetic_squad(2, seed=4), progress=False)
    batch = collate(features, pipeline.tokenizer.pad_token_id, pipeline.slot_ids(), M)
    config = CompressorTrainConfig().loss
    config.reconstruction, config.distillation, config.contrastive, config.anti_collapse, config.scheduled_sampling = 1.0, 0, 0, 0, 0
    loss, logs = CompressorObjective(config, max_steps=1)(pipeline, batch)
    loss.backward()
    assert logs["reconstruction"] > 0 and pipeline.compressor.offset.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="loss.reconstruction: needs pipeline.arch=gist_kv with compressor.layout=spread"):
        load_config(CompressorTrainConfig, None, ["pipeline.arch=gist_kv", "loss.reconstruction=0.5"]).validate()
