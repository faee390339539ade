"""TensorBoard event files in a run folder: per-step training scalars and the final metrics."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from compressions.models.loading import load_model
from compressions.store.run_folder import RunFolder
from compressions.training.config import TrainConfig
from compressions.training.loop import train


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_training_writes_its_losses_as_scalars(tmp_path):
    model, _ = load_model("tiny-random-llama")
    data = [torch.randint(3, 200, (8,), generator=torch.Generator().manual_seed(i)) for i in range(8)]
    config = TrainConfig(max_steps=3, batch_size=2, micro_batch_size=2)
    history = train(
        model, [{"params": model.parameters()}], lambda m, b: (m(input_ids=b, labels=b).loss, {}), data, torch.stack, config,
        progress=False, tensorboard_dir=tmp_path,
    )  # fmt: skip
    scalars = _scalars(tmp_path / "train")
    assert scalars.keys() == {"loss", "lr"}
    assert scalars["loss"] == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in history]


def test_metrics_are_written_as_scalars_too(tmp_path):
    metrics = {"f1": 51.5, "n": 10, "method": "prefix", "cached": True, "gist-1": {"val": {"rougeL": 30.0}}}
    with RunFolder(tmp_path) as run:
        run.write_metrics(metrics)
    assert (tmp_path / "metrics.json").exists()
    assert _scalars(tmp_path / "tensorboard" / "eval") == {"f1": [(0, 51.5)], "n": [(0, 10.0)], "gist-1/val/rougeL": [(0, 30.0)]}
