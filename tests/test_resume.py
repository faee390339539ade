"""Resume after kill -9, determinism, and the last good checkpoint after a NaN (training.checkpoints)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from compressions.models.loading import load_model
from compressions.training.checkpoints import CheckpointMismatchError, latest_checkpoint
from compressions.training.config import TrainConfig
from compressions.training.loop import NonFiniteLossError, train

REPO = Path(__file__).resolve().parents[1]
JOB = [sys.executable, str(REPO / "tests" / "resume_job.py")]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _finished(out: Path) -> tuple[dict, list[dict], list[dict]]:
    params = torch.load(out / "params.pt")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return params, json.loads((out / "history.json").read_text()), log


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path):
    subprocess.run([*JOB, str(tmp_path / "whole")], env=ENV, check=True, timeout=120)
    killed = tmp_path / "killed"
    job = subprocess.Popen([*JOB, str(killed), "0.4"], env=ENV)
    deadline = time.monotonic() + 90
    while (latest_checkpoint(killed / "train_state") or Path("step-0")).name < "step-00000006":  # in the second epoch
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before its third checkpoint"
        time.sleep(0.05)
    job.kill()  # SIGKILL
    job.wait()
    assert not (killed / "params.pt").exists()
    subprocess.run([*JOB, str(killed)], env=ENV, check=True, timeout=120)

    params, history, log = _finished(tmp_path / "whole")
    params2, history2, log2 = _finished(killed)
    assert history2 == history and log2 == log == history  # bit-identical losses and learning rates
    assert [r["step"] for r in log2] == list(range(1, 13))
    assert params2.keys() == params.keys() and all(torch.equal(params[k], params2[k]) for k in params)
    assert sorted(p.name for p in (killed / "train_state").iterdir()) == ["step-00000010", "step-00000012"]  # older ones removed


def _lm_data():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 200, (12,), generator=g) for _ in range(8)]


def _collate(rows):
    return {"input_ids": torch.stack(rows)}


def _lm_loss(module, batch):
    return module(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss, {}


def _run(loss_fn=_lm_loss, checkpoint_dir=None, **kw):
    model, _ = load_model("tiny-random-llama")
    config = TrainConfig(**{"max_steps": 4, "batch_size": 2, "micro_batch_size": 2, "learning_rate": 1e-3, **kw})
    history = train(model, [{"params": model.parameters()}], loss_fn, _lm_data(), _collate, config, progress=False, checkpoint_dir=checkpoint_dir)
    return model, history


def test_same_config_and_seed_twice_is_identical_and_another_seed_is_not():
    (a, ha), (b, hb), (_, hc) = _run(seed=3), _run(seed=3), _run(seed=4)
    assert ha == hb != hc
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_nan_loss_keeps_the_last_good_checkpoint(tmp_path):
    calls = []

    def nan_at_step_3(module, batch):
        calls.append(1)
        loss = _lm_loss(module, batch)[0]
        return (loss * float("nan") if len(calls) == 3 else loss), {}

    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3.*last good checkpoint .*step-00000002"):
        _run(nan_at_step_3, tmp_path, checkpoint_every=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001", "step-00000002"]
    # a rerun resumes from it: steps 1-2 are not repeated
    _, history = _run(checkpoint_dir=tmp_path, checkpoint_every=1)
    assert [r["step"] for r in history] == [1, 2, 3, 4] and len(calls) == 3


def test_a_checkpoint_from_other_settings_is_refused(tmp_path):
    _run(checkpoint_dir=tmp_path, checkpoint_every=2)
    with pytest.raises(CheckpointMismatchError, match="learning_rate"):
        _run(checkpoint_dir=tmp_path, checkpoint_every=2, learning_rate=2e-3)


@pytest.mark.parametrize("step", [999999, 3, "4"])
def test_a_step_whose_position_says_another_step_is_refused(tmp_path, step):
    _run(checkpoint_dir=tmp_path, checkpoint_every=2)
    position = tmp_path / "step-00000004" / "position.json"
    saved = json.loads(position.read_text())
    position.write_text(json.dumps({**saved, "step": step}))  # past max_steps, not its folder's, or not a number
    with pytest.raises(CheckpointMismatchError, match=f"says step {step!r}"):
        _run(checkpoint_dir=tmp_path, checkpoint_every=2)


def test_a_finished_compressor_run_resumes_at_its_end_with_the_same_results(tmp_path):
    from compressions.compressors.train import CompressorTrainConfig
    from compressions.config import load_config
    from compressions.data.synthetic import synthetic_squad
    from compressions.experiments.compressor_run import train_compressor

    examples = synthetic_squad(8)
    overrides = [
        "pipeline.model=tiny-random-llama", "pipeline.arch=conv", "pipeline.budget=4", "train.max_steps=4",
        "train.batch_size=4", "train.micro_batch_size=2", "train.checkpoint_every=2", "loss.scheduled_sampling=0.5",
        "eval_limit=0", f"out={tmp_path}",
    ]  # fmt: skip
    runs = [train_compressor(load_config(CompressorTrainConfig, overrides=overrides), examples, examples, progress=False) for _ in range(2)]
    assert sorted(p.name for p in (tmp_path / "train_state").iterdir()) == ["step-00000002", "step-00000004"]
    assert runs[0]["last_steps_mean"] == runs[1]["last_steps_mean"] and runs[0]["last_steps_mean"]["sampling_share"] > 0
    assert runs[0]["validation_collapse"] == runs[1]["validation_collapse"]  # the same trained compressor


def test_a_compressor_step_holds_only_trainable_weights_and_resumes_exactly(tmp_path):
    """The frozen LLM stays out of train_state; a run resumed from its step 2 ends with the weights of the
    run that was never stopped (compressor and LoRA adapter)."""
    from safetensors.torch import load_file

    from compressions.compressors.train import CompressorTrainConfig
    from compressions.config import load_config
    from compressions.data.synthetic import synthetic_squad
    from compressions.experiments.compressor_run import train_compressor

    examples = synthetic_squad(8)
    overrides = [
        "pipeline.model=tiny-random-llama", "pipeline.arch=pooling", "pipeline.budget=4", "pipeline.use_lora=true",
        "train.max_steps=4", "train.batch_size=4", "train.micro_batch_size=2", "train.checkpoint_every=2",
        "eval_limit=0", "diagnostic_contexts=0", f"out={tmp_path}",
    ]  # fmt: skip
    config = load_config(CompressorTrainConfig, overrides=overrides)
    train_compressor(config, examples, examples, progress=False)
    saved = load_file(tmp_path / "train_state" / "step-00000004" / "model.safetensors")
    assert saved and all(k.startswith("compressor.") or "lora_" in k for k in saved)
    assert any("lora_" in k for k in saved) and any(k.startswith("compressor.") for k in saved)
    done = {f: load_file(tmp_path / "checkpoint" / f) for f in ("compressor.safetensors", "adapter/adapter_model.safetensors")}
    shutil.rmtree(tmp_path / "train_state" / "step-00000004")
    shutil.rmtree(tmp_path / "checkpoint")
    train_compressor(load_config(CompressorTrainConfig, overrides=overrides), examples, examples, progress=False)
    for f, weights in done.items():
        again = load_file(tmp_path / "checkpoint" / f)
        assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)
