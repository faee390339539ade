"""Soft-token compressors: shapes, padding invariance, losses, the pipeline's layout and generation,
checkpoints, an end-to-end overfit on the tiny model, and `eval squad --method learned`."""

import dataclasses
import json

import pytest
import torch
from conftest import learned_answers, steerable_tiny

from compressions.cli.main import main
from compressions.compressors import ARCHITECTURES, build_compressor, losses
from compressions.compressors.batches import collate, collate_questions, question_groups, squad_features
from compressions.compressors.losses import LossConfig
from compressions.compressors.objective import CompressorObjective
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.compressors.train import CompressorTrainConfig
from compressions.config import load_config
from compressions.data.documents import pack_documents
from compressions.data.prompts import squad_prompt
from compressions.data.synthetic import synthetic_job_questions, synthetic_squad
from compressions.errors import ConfigError
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.compressor_run import train_compressor
from compressions.experiments.squad_run import evaluate_squad
from compressions.models import load_model
from compressions.models.generation import generate_greedy, left_pad, position_ids
from compressions.models.soft_prompts import embed_with_slots, slot_mask
from compressions.training.lora import LoraSettings

FEATURE_ARCHS = [name for name, cls in ARCHITECTURES.items() if not cls.reads_llm]


def _compressor(arch, m=6, d=32, normalize=True):
    torch.manual_seed(0)
    return build_compressor(arch, num_tokens=m, input_size=d, hidden_size=16, output_norm=2.0, normalize_output=normalize).eval()


@pytest.mark.parametrize("arch", FEATURE_ARCHS)
def test_output_scale_is_free_unless_normalized(arch):
    x, mask = torch.randn(2, 9, 32), torch.ones(2, 9, dtype=torch.bool)
    free = _compressor(arch, normalize=False)(x, mask)
    clamped = _compressor(arch)(x, mask)
    torch.testing.assert_close(clamped, free / free.norm(dim=-1, keepdim=True) * 2.0)
    assert not torch.allclose(free.norm(dim=-1), torch.full((2, 6), 2.0))


@pytest.mark.parametrize("arch", FEATURE_ARCHS)
@pytest.mark.parametrize("n", [3, 6, 17])  # below, at and above M = 6
def test_shape_norm_and_padding_invariance(arch, n):
    compressor = _compressor(arch)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, n + 9, 32, generator=g)
    mask = torch.zeros(3, n + 9, dtype=torch.bool)
    mask[0, :n], mask[1, : n + 9], mask[2, : n + 4] = True, True, True
    out = compressor(x, mask)
    assert out.shape == (3, 6, 32)
    torch.testing.assert_close(out.norm(dim=-1), torch.full((3, 6), 2.0))
    alone = compressor(x[:1, :n], mask[:1, :n])
    torch.testing.assert_close(out[0], alone[0], atol=1e-5, rtol=1e-5)
    # what sits in the padding is never read
    x_noise = x.clone()
    x_noise[0, n:] = 100.0
    torch.testing.assert_close(compressor(x_noise, mask)[0], out[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], out[1])  # different contexts, different tokens
    assert compressor.num_parameters() == sum(p.numel() for p in compressor.parameters()) > 0


def test_bad_compressor_inputs():
    with pytest.raises(ConfigError, match="no option.*nope"):
        build_compressor("conv", nope=1)
    with pytest.raises(ConfigError, match="unknown compressor arch"):
        build_compressor("magic")
    with pytest.raises(ConfigError, match="heads"):
        build_compressor("cross_attention", hidden_size=10, heads=4)
    with pytest.raises(ValueError, match="at least one real"):
        _compressor("pooling")(torch.zeros(1, 4, 32), torch.zeros(1, 4, dtype=torch.bool))


def test_window_pooling_is_exact_average():
    # pooling with a constant score is the plain window mean, which equals torch's adaptive pooling
    compressor = _compressor("pooling", m=4, d=32)
    x = torch.randn(1, 10, 16)
    with torch.no_grad():
        compressor.score.weight.zero_()
    expected = torch.nn.functional.adaptive_avg_pool1d(compressor.value(x).transpose(1, 2), 4).transpose(1, 2)
    torch.testing.assert_close(compressor.encode(x, torch.ones(1, 10, dtype=torch.bool)), expected)


# --- losses on constructed cases ---


def _peaked_logits(labels, vocab=7, scale=30.0):
    safe = labels.clamp_min(0)
    return torch.nn.functional.one_hot(safe, vocab).float() * scale


def test_answer_and_first_token_ce():
    labels = torch.tensor([[-100, 2, 3], [4, 5, 6]])
    right = _peaked_logits(labels).requires_grad_()
    assert losses.answer_ce(right, labels) < 1e-6 and losses.first_token_ce(right, labels) < 1e-6
    assert losses.first_token_accuracy(right, labels) == 1.0
    uniform = torch.zeros(2, 3, 7, requires_grad=True)
    assert losses.answer_ce(uniform, labels).item() == pytest.approx(torch.log(torch.tensor(7.0)).item())
    wrong_first = right.detach().clone()
    wrong_first[0, 1] = _peaked_logits(torch.tensor([0]))[0]  # row 0's first answer token is column 1
    assert losses.first_token_accuracy(wrong_first, labels) == 0.5
    losses.first_token_ce(uniform, labels).backward()
    assert uniform.grad[0, 0].abs().sum() == 0 and uniform.grad[0, 1].abs().sum() > 0  # only first positions


def test_distillation_kl():
    labels = torch.tensor([[-100, 1], [2, 3]])
    teacher = torch.randn(2, 2, 7)
    student = teacher.clone().requires_grad_()
    assert losses.distillation_kl(student, teacher, labels).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(2, 2, 7, requires_grad=True)
    kl = losses.distillation_kl(other, teacher, labels, temperature=2.0)
    assert kl > 0
    kl.backward()
    assert other.grad[0, 0].abs().sum() == 0 and other.grad[1].abs().sum() > 0  # padding positions ignored


def test_info_nce():
    keys = torch.eye(4, 8)
    matched = (keys * 5).requires_grad_()
    positives = torch.eye(4, dtype=torch.bool)
    low = losses.info_nce(matched, keys, positives, temperature=0.01)
    assert low.item() == pytest.approx(0.0, abs=1e-6)
    shuffled = keys[[1, 0, 3, 2]].clone().requires_grad_()
    high = losses.info_nce(shuffled, keys, positives, temperature=0.1)
    assert high > 5
    high.backward()
    assert shuffled.grad.abs().sum() > 0
    # two questions on one context: both keys count as positives
    same = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    q = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0]])
    assert losses.info_nce(q, q, same, 0.01).item() == pytest.approx(0.0, abs=1e-6)


def test_anti_collapse_and_cosine_diagnostics():
    orthogonal = torch.eye(4, 6)[None].repeat(2, 1, 1).requires_grad_()  # (B=2, M=4, d=6)
    assert losses.anti_collapse(orthogonal).item() == pytest.approx(0.0)
    collapsed = torch.ones(2, 4, 6, requires_grad=True)
    assert losses.anti_collapse(collapsed).item() == pytest.approx(1.0)
    noisy = (torch.ones(2, 4, 6) + 0.1 * torch.randn(2, 4, 6)).requires_grad_()
    losses.anti_collapse(noisy).backward()
    assert noisy.grad.abs().sum() > 0
    assert losses.cosine_within(collapsed).tolist() == pytest.approx([1.0, 1.0])
    assert losses.cosine_within(orthogonal).tolist() == pytest.approx([0.0, 0.0])
    assert losses.cosine_across(orthogonal).item() == pytest.approx(1.0)  # same tokens for both examples
    flipped = torch.stack([torch.eye(4, 6), -torch.eye(4, 6)])
    assert losses.cosine_across(flipped).item() == pytest.approx(-1.0)


def test_scheduled_sampling_mix():
    assert losses.sampling_share(0, 11, 0.5) == 0.0 and losses.sampling_share(10, 11, 0.5) == 0.5
    assert losses.sampling_share(5, 11, 0.5) == pytest.approx(0.25)
    ids = torch.tensor([[9, 9, 1, 2], [9, 9, 9, 3]])
    labels = torch.tensor([[1, 2], [-100, 3]])
    predictions = torch.tensor([[7, 8], [7, 8]])
    g = torch.Generator().manual_seed(0)
    assert torch.equal(losses.mix_answer_inputs(ids, labels, predictions, 0.0, g), ids)
    assert losses.mix_answer_inputs(ids, labels, predictions, 1.0, g).tolist() == [[9, 9, 7, 8], [9, 9, 9, 8]]


# --- the pipeline on the tiny model ---


def _pipeline(arch="pooling", budget=4, lora_rank=0, fresh=False, tiny=None, **options):
    llm, tokenizer = load_model("tiny-random-llama") if fresh or lora_rank else tiny
    lora = LoraSettings(r=max(lora_rank, 1), target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    config = PipelineConfig(model="tiny-random-llama", arch=arch, budget=budget, use_lora=lora_rank > 0, lora=lora, **options)
    torch.manual_seed(0)
    return SoftPromptModel.create(config, llm, tokenizer)


def test_training_input_is_the_harness_prompt_plus_answer(tiny):
    pipeline = _pipeline(tiny=tiny, separator="bos")
    tokenizer = tiny[1]
    example = synthetic_squad(1, seed=3)[0]
    feature = squad_features(pipeline, [example], progress=False)[0]
    batch = collate([feature], tokenizer.pad_token_id, pipeline.slot_ids(), 4)
    parts = squad_prompt(tokenizer, example.question, pipeline.config.prompt)
    harness = tokenizer(parts.prefix).input_ids + pipeline.slot_ids() + tokenizer(parts.suffix, add_special_tokens=False).input_ids
    answer = tokenizer(" " + example.answers[0], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert batch["input_ids"][0].tolist() == harness + answer
    assert batch["labels"][0].tolist() == answer
    start = len(tokenizer(parts.prefix).input_ids)
    assert batch["slot_mask"][0].nonzero().flatten().tolist() == list(range(start, start + 4))
    assert batch["input_ids"][0, start + 4].item() == tokenizer.bos_token_id  # the separator follows the slot
    teacher = tokenizer(parts.prefix + example.context + parts.suffix).input_ids + answer
    assert batch["teacher_ids"][0].tolist() == teacher


def test_batched_answer_logits_equal_single(tiny):
    pipeline = _pipeline("gist_compressor", tiny=tiny, compressor={"hidden_size": 16})
    features = squad_features(pipeline, synthetic_squad(3), progress=False)
    collate_args = (tiny[1].pad_token_id, pipeline.slot_ids(), 4)
    batched = pipeline(collate(features, *collate_args))["logits"]
    for row, feature in enumerate(features):
        single = pipeline(collate([feature], *collate_args))["logits"][0]
        a = len(feature.answer_ids)
        torch.testing.assert_close(batched[row, -a:], single[-a:], atol=1e-4, rtol=1e-4)


def _sharp_tiny():
    """A fresh tiny LLM with larger weights: the random one repeats its last token whatever it reads."""
    model, tokenizer = load_model("tiny-random-llama")
    with torch.no_grad():
        for p in model.model.layers.parameters():
            if p.dim() == 2:
                p.mul_(25)
        model.model.norm.weight.fill_(10.0)
    return model, tokenizer


def test_generation_from_soft_slots_matches_a_manual_greedy_loop():
    model, tokenizer = _sharp_tiny()
    g = torch.Generator().manual_seed(0)
    prompts = [list(range(10, 22)), list(range(30, 37))]
    soft = [(3, torch.randn(4, 64, generator=g)), (1, torch.randn(4, 64, generator=g))]
    batched = generate_greedy(model, tokenizer, prompts, 5, batch_size=2, stop_at_newline=False, progress=False, soft=soft)
    for prompt, (start, vectors), expected in zip(prompts, soft, batched):
        ids, mask = left_pad([prompt], tokenizer.pad_token_id)
        embeds = embed_with_slots(model, ids, slot_mask([len(prompt)], [(start, 4)], ids.shape[1]), vectors)
        tokens = []
        for _ in range(len(expected)):
            logits = model(inputs_embeds=embeds, position_ids=position_ids(torch.ones(embeds.shape[:2]))).logits
            tokens.append(logits[0, -1].argmax().item())
            embeds = torch.cat([embeds, model.get_input_embeddings()(torch.tensor([[tokens[-1]]]))], dim=1)
        assert tokens == expected
    # the soft vectors matter: other vectors, other continuation
    other = [(s, v * -1) for s, v in soft]
    assert generate_greedy(model, tokenizer, prompts, 5, 2, False, False, soft=other) != batched


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_checkpoint_round_trips_bit_exactly(tiny, tmp_path, lora_rank):
    pipeline = _pipeline("cross_attention", lora_rank=lora_rank, tiny=tiny, compressor={"hidden_size": 16, "passes": 2})
    if lora_rank:  # make the adapter non-trivial (peft starts LoRA B at zero)
        with torch.no_grad():
            for name, p in pipeline.llm.named_parameters():
                if "lora_B" in name:
                    p.normal_()
    features = squad_features(pipeline, synthetic_squad(2), progress=False)
    batch = collate(features, tiny[1].pad_token_id, pipeline.slot_ids(), 4)
    pipeline.eval()
    before = pipeline(batch)
    pipeline.save_pretrained(tmp_path / "ck")
    expected = {"compressor.safetensors", "compressor_config.json", "pipeline_config.json", "shots.json"} | ({"adapter"} if lora_rank else set())
    assert {p.name for p in (tmp_path / "ck").iterdir()} == expected
    loaded = SoftPromptModel.from_pretrained(tmp_path / "ck")
    assert loaded.config == pipeline.config
    for (k, a), (k2, b) in zip(pipeline.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    after = loaded(batch)
    assert torch.equal(before["soft"], after["soft"]) and torch.equal(before["logits"], after["logits"])


def test_compressor_overfits_eight_examples_end_to_end(tmp_path):
    """Soft tokens are the only thing that differs between the 8 prompts, so exact answers mean the
    answer travelled context -> compressor -> soft tokens -> LLM (with a LoRA adapter) -> generation."""
    examples = synthetic_job_questions()
    config = load_config(
        CompressorTrainConfig,
        overrides=[
            "pipeline.model=tiny-random-llama", "pipeline.arch=conv", "pipeline.budget=4", "pipeline.compressor.hidden_size=64",
            "pipeline.use_lora=true", "pipeline.lora.r=16", "pipeline.lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]",
            "train.max_steps=250", "train.batch_size=8", "train.micro_batch_size=8", "train.learning_rate=3e-3",
            "lora_learning_rate=3e-3", "loss.distillation=0", "loss.scheduled_sampling=0", "eval_limit=0", f"out={tmp_path / 'run'}",
            "pipeline.prompt.format=chat", "pipeline.prompt.shots=0",  # the layout this test was sized for
        ],
    )  # fmt: skip
    llm, tokenizer = steerable_tiny()
    frozen = {n: p.detach().clone() for n, p in llm.named_parameters()}
    summary = train_compressor(config, examples, examples, llm, tokenizer, progress=False)
    assert all(torch.equal(frozen[n], p) for n, p in llm.named_parameters() if n in frozen)  # LLM untouched

    pipeline = SoftPromptModel.from_pretrained(tmp_path / "run" / "checkpoint", *steerable_tiny())
    torch.manual_seed(config.train.seed)  # the initial compressor, as train_compressor seeded it
    initial = SoftPromptModel.create(config.pipeline, *load_model("tiny-random-llama")).compressor
    for (name, p0), p1 in zip(initial.named_parameters(), pipeline.compressor.parameters()):
        assert not torch.equal(p0, p1), f"{name} did not train"

    answers = learned_answers(pipeline, examples)
    assert [tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers] == [e.answers[0] for e in examples]
    # another context's soft tokens give another answer: the information is in the soft tokens
    moved = learned_answers(pipeline, examples, shift=1)
    assert sum(a != b for a, b in zip(moved, answers)) >= 6

    rows = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    logged = {"cosine_within", "cosine_across", "soft_norm", "first_token_accuracy", "answer_ce", "first_token_ce", "contrastive", "anti_collapse"}
    assert len(rows) == 250 and logged <= set(rows[-1])
    assert summary["last_steps_mean"]["first_token_accuracy"] == 1.0
    assert set(summary["validation_collapse"]) == {"contexts", "cosine_within", "cosine_across", "soft_norm", "embedding_norm"}


def test_untrained_run_saves_the_starting_pipeline(tiny, tmp_path):
    """`untrained=true` gives a step-0 checkpoint: the weights train_compressor starts from, no step taken."""
    examples = synthetic_squad(4, seed=5)
    overrides = ["pipeline.model=tiny-random-llama", "pipeline.arch=pooling", "pipeline.budget=4", "untrained=true",
                 "eval_limit=0", f"out={tmp_path}"]  # fmt: skip
    config = load_config(CompressorTrainConfig, overrides=overrides)
    summary = train_compressor(config, examples, examples, *tiny, progress=False)
    assert summary["steps"] == 0 and summary["last_steps_mean"] == {} and summary["validation_collapse"]
    torch.manual_seed(config.train.seed)
    initial = SoftPromptModel.create(config.pipeline, *load_model("tiny-random-llama")).compressor.state_dict()
    saved = SoftPromptModel.from_pretrained(tmp_path / "checkpoint", *load_model("tiny-random-llama")).compressor.state_dict()
    assert initial.keys() == saved.keys() and all(torch.equal(initial[k], saved[k]) for k in initial)


def test_cli_train_then_eval_learned(tmp_path, capsys):
    data = tmp_path / "squad.json"
    examples = synthetic_squad(12)
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in examples
    ]
    data.write_text(json.dumps({"data": [{"title": "A", "paragraphs": paragraphs[:8]}, {"title": "B", "paragraphs": paragraphs[8:]}]}))
    common = ["--data", str(data), "train_articles=1"]
    argv = ["train", "compressor", "--arch", "cross_attention", "--budget", "3", "--preset", "test", "--model", "tiny-random-llama"]
    assert main([*argv, "--out", str(tmp_path / "run"), *common, "pipeline.compressor.hidden_size=16", "max_new_tokens=3"]) == 0
    run = tmp_path / "run"
    assert {"config.json", "train_log.jsonl", "training_summary.json", "checkpoint", "eval"} <= {p.name for p in run.iterdir()}
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["steps"] == 2 and summary["eval"]["n"] == 4
    out = tmp_path / "eval"
    eval_argv = ["eval", "squad", "--method", "learned", "--checkpoint", str(run / "checkpoint"), "--out", str(out), "--max-new-tokens", "3"]
    assert main([*eval_argv, *common]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "learned-cross_attention" and metrics["budget"] == 3 and metrics["n"] == 4
    assert metrics["mean_kept_tokens"] == 3 and metrics["compression_ratio"] == pytest.approx(metrics["mean_context_tokens"] / 3)
    assert metrics["compress_seconds_per_example"] > 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "tiny-random-llama" and saved["prompt"] == summary_prompt(run)
    assert main(["eval", "squad", "--method", "learned", *common]) == 2
    assert "error: --checkpoint: method 'learned' needs a compressor checkpoint folder" in capsys.readouterr().err


def summary_prompt(run):
    return json.loads((run / "checkpoint" / "pipeline_config.json").read_text())["prompt"]


def test_learned_eval_through_the_harness_function(tiny, tmp_path):
    pipeline = _pipeline("conv", tiny=tiny, compressor={"hidden_size": 16})
    pipeline.save_pretrained(tmp_path / "ck")
    examples = synthetic_squad(3)
    config = SquadEvalConfig(method="learned", checkpoint=str(tmp_path / "ck"), max_new_tokens=2, out=str(tmp_path / "ev"))
    metrics = evaluate_squad(config, examples, examples, progress=False)
    assert metrics["mean_kept_tokens"] == 4 and metrics["n"] == 3
    sample = json.loads((tmp_path / "ev" / "sample_predictions.json").read_text())[0]
    assert examples[0].context not in sample["prompt"] and examples[0].question in sample["prompt"]


def test_hidden_state_input_and_teacher_without_adapter():
    pipeline = _pipeline("pooling", lora_rank=2, input_layer=1)
    with torch.no_grad():
        for name, p in pipeline.llm.named_parameters():
            if "lora_B" in name:
                p.normal_()
    base, tokenizer = load_model("tiny-random-llama")  # the same weights, no adapter
    features = squad_features(pipeline, synthetic_squad(2), progress=False)
    batch = collate(features, tokenizer.pad_token_id, pipeline.slot_ids(), 4)
    ids, mask = batch["context_ids"], batch["context_mask"]
    expected = base(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(pipeline.context_features(ids, mask), expected)
    teacher = pipeline.teacher_logits(batch["teacher_ids"], batch["teacher_mask"], batch["labels"].shape[1])
    reference = base(
        input_ids=batch["teacher_ids"], attention_mask=batch["teacher_mask"], position_ids=position_ids(batch["teacher_mask"])
    ).logits[:, -batch["labels"].shape[1] - 1 : -1]
    torch.testing.assert_close(teacher, reference)
    adapted = pipeline.llm(input_ids=batch["teacher_ids"], attention_mask=batch["teacher_mask"]).logits
    assert not torch.allclose(adapted[:, -batch["labels"].shape[1] - 1 : -1], reference, atol=1e-3)  # the adapter was off


def test_documents_train_several_questions_per_context_diagnose_and_evaluate_on_packed_documents(tiny, tmp_path):
    examples = synthetic_squad(8, seed=5)
    packed, _ = pack_documents(examples, tiny[1], 160)
    contexts = len({e.context for e in packed})
    overrides = ["pipeline.model=tiny-random-llama", "pipeline.arch=pooling", "pipeline.budget=4", "pipeline.questions_per_context=3",
                 "train.max_steps=1", "train.batch_size=2", "train.micro_batch_size=2", "documents=160", "eval_limit=3",
                 "max_new_tokens=2", f"out={tmp_path}"]  # fmt: skip
    summary = train_compressor(load_config(CompressorTrainConfig, overrides=overrides), examples, examples, *tiny, progress=False)
    assert 1 < contexts < 8 and summary["validation_collapse"]["contexts"] == contexts
    assert summary["train_questions"] == 8 and summary["steps"] == 1
    assert summary["eval"]["documents"]["max_tokens"] == 160 and summary["eval"]["n"] == 3
    with pytest.raises(ConfigError, match="documents"):
        load_config(CompressorTrainConfig, overrides=["documents=100000"]).validate()


def test_a_config_sizes_its_own_preset(tmp_path):
    data = tmp_path / "squad.json"
    paragraphs = [{"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]} for e in synthetic_squad(6)]
    data.write_text(json.dumps({"data": [{"title": "A", "paragraphs": paragraphs[:4]}, {"title": "B", "paragraphs": paragraphs[4:]}]}))
    own = ["train.max_steps=1", "train.batch_size=2", "train.micro_batch_size=2", "eval_limit=0"]
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"pipeline": {"arch": "pooling", "budget": 3}, "presets": {"test": own}}))
    argv = ["train", "compressor", "--config", str(config), "--preset", "test", "--model", "tiny-random-llama", "--data", str(data), "train_articles=1"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["steps"] == 1 and "eval" not in summary  # PRESETS["test"] would take 2 steps and score 4 questions
    with pytest.raises(ConfigError, match="presets: names must be among"):
        load_config(CompressorTrainConfig, overrides=["presets={huge: [train.max_steps=9]}"])


@pytest.mark.parametrize(
    "arch, options",
    [("gist_kv", {"encoder_lora": True}), ("restore", {"encoder_lora": True, "compressor": {"slots": 1}}), ("gist_compressor", {"compressor": {"hidden_size": 16}})],
)
def test_a_multi_question_batch_gives_the_loss_and_gradients_of_one_question_at_a_time(arch, options):
    """The distillation term included: the multi-question batch's teacher reads each context once."""
    pipeline = _pipeline(arch, fresh=True, **options)
    examples = [dataclasses.replace(e, question=f"{e.question} ({k})") for e in synthetic_squad(2, seed=1) for k in range(3)]
    features = squad_features(pipeline, examples, progress=False)
    groups = question_groups(features, 2)
    assert [[features.index(f) for f in g] for g in groups] == [[0, 1], [2], [3, 4], [5]]
    args = (pipeline.tokenizer.pad_token_id, pipeline.slot_ids(), 4)
    objective = CompressorObjective(LossConfig(first_token_ce=1.0, contrastive=0.1, anti_collapse=0.1), max_steps=1)
    trained = [p for group in pipeline.trainable_groups(1.0, 1.0) for p in group["params"]]
    results = []
    for batch in (collate_questions(groups, *args), collate(features, *args)):  # one compression per context; per question
        pipeline.zero_grad()
        loss, _ = objective(pipeline, batch)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in trained]))
    (many, many_grads), (one, one_grads) = results
    batch = collate_questions(groups, *args)
    assert batch["context_ids"].shape[0] == 4
    with torch.no_grad():
        shared, full = pipeline.context_teacher_logits(batch), pipeline.teacher_logits(batch["teacher_ids"], batch["teacher_mask"], batch["labels"].shape[1])
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(many, one, atol=1e-5, rtol=1e-5)
    for a, b in zip(many_grads, one_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_questions_per_context_needs_a_question_agnostic_pipeline():
    with pytest.raises(ConfigError, match="questions_per_context"):
        PipelineConfig(arch="gist_kv", question_aware=True, questions_per_context=4).validate()
    with pytest.raises(ConfigError, match="needs questions"):
        load_config(CompressorTrainConfig, overrides=["pipeline.questions_per_context=2", "task=autoencode"])
    PipelineConfig(arch="gist_kv", questions_per_context=4).validate()
