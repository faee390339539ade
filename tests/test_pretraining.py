"""Pretraining tasks on unlabelled paragraphs (compressors/pretraining.py): what the decoder must predict
from the compressed context, what the teacher reads, and a training run that uses them."""

import json

import pytest
import torch

from compressions.compressors.batches import collate
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.compressors.pretraining import AUTOENCODE_CUE, pretraining_features
from compressions.compressors.train import CompressorTrainConfig
from compressions.config import load_config
from compressions.data.synthetic import synthetic_squad
from compressions.errors import ConfigError
from compressions.experiments.compressor_run import train_compressor
from compressions.models import load_model

TEXTS = ["The harbour was built in 1854 by the city council.", "Owls hunt at night and sleep by day in hollow trees."]


@pytest.fixture
def pipeline(tiny):
    config = PipelineConfig(model="tiny-random-llama", arch="pooling", budget=4)
    return SoftPromptModel.create(config, *tiny)


def test_autoencode_regenerates_the_paragraph_after_a_cue(pipeline):
    tokenizer = pipeline.tokenizer
    features = pretraining_features(pipeline, TEXTS, "autoencode")
    assert sorted(f.group for f in features) == [0, 1]
    for f in features:
        text = TEXTS[f.group]
        assert f.context_ids == f.compressor_ids == tokenizer(text, add_special_tokens=False).input_ids
        assert f.prefix_ids == pipeline.prefix_ids()
        assert tokenizer.decode(f.suffix_ids) == AUTOENCODE_CUE
        assert f.answer_ids[-1] == tokenizer.eos_token_id and tokenizer.decode(f.answer_ids[:-1]) == f" {text}"


def test_continuation_splits_the_paragraph_and_the_teacher_reads_it_whole(pipeline):
    features = pretraining_features(pipeline, TEXTS, "continue")
    batch = collate(features, pipeline.tokenizer.pad_token_id, pipeline.slot_ids(), 4)
    for row, f in enumerate(features):
        ids = pipeline.context_ids(TEXTS[f.group])
        assert f.context_ids == ids[: len(ids) // 2] and len(f.suffix_ids) == 1
        assert f.context_ids + f.suffix_ids + f.answer_ids == ids
        teacher = batch["teacher_ids"][row][batch["teacher_mask"][row].bool()].tolist()
        assert teacher == pipeline.prefix_ids() + ids  # the uncompressed paragraph, nothing between
        labels = batch["labels"][row]
        assert labels[labels >= 0].tolist() == ids[len(ids) // 2 + 1 :]


def test_pretrain_gives_both_tasks_per_paragraph_in_a_seeded_order(pipeline):
    one, same, other = (pretraining_features(pipeline, TEXTS, "pretrain", seed=s) for s in (0, 0, 1))
    assert len(one) == 4 and one == same and sorted(map(repr, one)) == sorted(map(repr, other))
    with pytest.raises(ValueError, match="unknown pretraining task"):
        pretraining_features(pipeline, TEXTS, "summarise")


def test_question_aware_compressor_also_reads_what_follows_the_slot(tiny):
    config = PipelineConfig(model="tiny-random-llama", arch="pooling", budget=4, question_aware=True)
    pipeline = SoftPromptModel.create(config, *tiny)
    for f in pretraining_features(pipeline, TEXTS, "pretrain"):
        assert f.compressor_ids == f.context_ids + f.suffix_ids


def test_training_on_a_pretraining_task_then_init_from_it_on_answers(tmp_path):
    examples = synthetic_squad(6, seed=3)
    overrides = [
        "pipeline.model=tiny-random-llama", "pipeline.arch=pooling", "pipeline.budget=4", "train.max_steps=2",
        "train.batch_size=2", "train.micro_batch_size=2", "eval_limit=0", "diagnostic_contexts=0",
    ]  # fmt: skip
    llm, tokenizer = load_model("tiny-random-llama")
    config = load_config(CompressorTrainConfig, overrides=[*overrides, "task=pretrain", f"out={tmp_path / 'pre'}"])
    summary = train_compressor(config, examples, examples, llm, tokenizer, progress=False)
    paragraphs = len({e.context for e in examples})
    assert summary["task"] == "pretrain" and summary["train_texts"] == 2 * paragraphs
    rows = [json.loads(line) for line in (tmp_path / "pre" / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    then = [*overrides, f"init_from={tmp_path / 'pre' / 'checkpoint'}", f"out={tmp_path / 'qa'}"]
    summary = train_compressor(load_config(CompressorTrainConfig, overrides=then), examples, examples, llm, tokenizer, progress=False)
    assert summary["task"] == "squad" and summary["train_questions"] == len(examples)


def test_unknown_task_is_a_config_error():
    with pytest.raises(ConfigError, match="task must be squad or one of"):
        load_config(CompressorTrainConfig, overrides=["task=summarise"]).validate()
