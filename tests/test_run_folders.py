"""Run folders that cannot lie (issue 19): one run owns a folder at a time, status.json says how its last
run ended, metrics.json always belongs to config.json. Each row is a case a careless user tried."""

import fcntl
import json
import os
import pickle

import pytest
import torch
import yaml

from compressions.cli.main import main
from compressions.data.synthetic import synthetic_squad
from compressions.errors import CompressionsError, DataError
from compressions.experiments.grid import load_grid, run_grid
from compressions.models.loading import load_model
from compressions.store.folder_lock import LOCK_FILE
from compressions.store.run_folder import finished_metrics
from compressions.training.config import TrainConfig
from compressions.training.loop import train

HOLDER = {"pid": 4242, "command": "compressions eval squad --out X"}


def _squad_file(path):
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in synthetic_squad(6)
    ]
    path.write_text(json.dumps({"data": [{"title": "A", "paragraphs": paragraphs[:3]}, {"title": "B", "paragraphs": paragraphs[3:]}]}))
    return path


def _hold(folder):
    """Lock `folder` as another process would (flock on a separate open file), naming HOLDER; returns the fd."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(HOLDER).encode())
    return fd


def _state(folder):
    path = folder / "status.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _fail(*_args, **_kwargs):
    raise DataError("generation failed")


def _interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


# before: the method of a finished run first made in the folder, or "hold" (another process holds its lock)
# method: the run under test; breaks: what generation raises in it
# then: exit code, start of its one line on stderr, the folder's state and metrics.json's method afterwards
CASES = {
    "held by another run": ("hold", "none", None, 2, "error: ", None, None),
    "finished with another config": ("full", "none", None, 2, "error: ", "finished", "full"),
    "finished with the same config": ("full", "full", None, 0, None, "finished", "full"),
    "a rerun that fails": ("full", "full", _fail, 2, "error: generation failed", "failed", None),
    "a rerun stopped by Ctrl-C": ("full", "full", _interrupt, 130, "interrupted", "interrupted", None),
}
WORDS = {
    "held by another run": "is in use by another run (pid 4242: compressions eval squad --out X)",
    "finished with another config": "holds a finished run of another config (method)",
}


@pytest.mark.parametrize("case", CASES)
def test_a_run_folder_belongs_to_one_run(case, tmp_path, capsys, monkeypatch):
    before, method, breaks, code, line, state, metrics_method = CASES[case]
    data, out = _squad_file(tmp_path / "squad.json"), tmp_path / "run"
    argv = ["eval", "squad", "--model", "tiny-random-llama", "--data", str(data), "--max-new-tokens", "2", "--shots", "0", "train_articles=1", "--out", str(out)]
    if before == "hold":
        _hold(out)
    else:
        assert main([*argv, "--method", before]) == 0
    capsys.readouterr()
    if breaks is not None:
        monkeypatch.setattr("compressions.evaluation.reading.generate_greedy", breaks)
    assert main([*argv, "--method", method]) == code
    err = capsys.readouterr().err
    said = [text for text in err.splitlines() if text.startswith(("error", "interrupted"))]  # not progress bars or warnings
    assert "Traceback" not in err
    if line is None:
        assert not said
    else:
        assert len(said) == 1 and said[0].startswith(line) and WORDS.get(case, "") in said[0]
    status = _state(out)
    assert (status and status["state"]) == state
    if state == "failed":
        assert status["error"] == "DataError: generation failed"
    assert (finished_metrics(out) or {}).get("method") == metrics_method
    if metrics_method is None:  # no stale result beside the new config
        assert not (out / "metrics.json").exists() and not (out / "sample_predictions.json").exists()
    else:
        assert json.loads((out / "config.json").read_text())["method"] == metrics_method


def test_the_grid_runs_only_what_is_not_finished_and_not_held(tmp_path):
    base = {"model": "tiny-random-llama", "data": str(_squad_file(tmp_path / "squad.json")), "train_articles": 1, "max_new_tokens": 2, "prompt": {"shots": 0}}
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(yaml.safe_dump({"out": str(tmp_path / "g"), "groups": [{"kind": "squad", "base": base, "axes": {"method": ["full", "none"]}}]}))
    grid, out = load_grid(grid_file)
    run_grid(grid, out, progress=False, echo=lambda _: None)
    # `full` left metrics.json, then a rerun of it failed; `none` is being run by another grid
    (out / "full" / "status.json").write_text(json.dumps({"state": "failed", "error": "DataError: x"}))
    (out / "none" / "status.json").write_text(json.dumps({"state": "running"}))
    (out / "none" / "metrics.json").unlink()
    fd = _hold(out / "none")
    lines = []
    assert run_grid(grid, out, progress=False, echo=lines.append) == {"finished": ["full"], "skipped": ["none"], "failed": []}
    assert "none  skipped" in lines[1] and "pid 4242" in lines[1]
    os.close(fd)
    assert _state(out / "full")["state"] == "finished" and _state(out / "none")["state"] == "running"
    assert run_grid(grid, out, progress=False, echo=lambda _: None)["finished"] == ["none"]


def test_a_plain_rerun_rewrites_the_train_log_and_temp_folders_of_dead_runs_go(tmp_path):
    model, _ = load_model("tiny-random-llama")
    dead = tmp_path / "state" / ".step-00000001.999999999.tmp"  # a save killed mid-way, by a process long gone
    dead.mkdir(parents=True)
    data = [list(range(3, 15))] * 4
    config = TrainConfig(max_steps=2, batch_size=2, micro_batch_size=2, checkpoint_every=2)

    def loss(module, batch):
        return module(input_ids=batch, labels=batch).loss, {}

    def collate(rows):
        return torch.tensor(rows)

    for _ in range(2):
        train(model, [{"params": model.parameters()}], loss, data, collate, config, tmp_path / "log.jsonl", progress=False)
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2]
    train(model, [{"params": model.parameters()}], loss, data, collate, config, tmp_path / "log.jsonl", progress=False, checkpoint_dir=tmp_path / "state")
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["step-00000002"]


NAMES = {
    "out of the grid folder": ("../../escaped-{method}", "is not one folder name inside"),
    "an absolute path": ("/tmp/escaped-{method}", "is not one folder name inside"),
    "a sub-folder": ("sub/{method}", "is not one folder name inside"),
    "a hidden folder": (".{method}", "is not one folder name inside"),
    "a key that is no axis": ("{model}-{method}", "does not fit the axes (method)"),
}


@pytest.mark.parametrize("name, words", NAMES.values(), ids=NAMES.keys())
def test_a_cell_name_stays_inside_the_grid_folder(name, words, tmp_path, capsys):
    grid_file = tmp_path / "deep" / "g.yaml"
    grid_file.parent.mkdir()
    grid_file.write_text(yaml.safe_dump({"out": str(tmp_path / "deep" / "g"), "groups": [{"kind": "squad", "name": name, "axes": {"method": ["full"]}}]}))
    assert main(["grid", str(grid_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: groups[0]") and words in err[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "g.yaml"]  # nothing written anywhere


class Evil:
    """A pickle that creates a file when unpickled: what a hostile train_state could hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class NoisyLoss:
    """A loss with its own random generator, so that the checkpoint holds loss_state.pt."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(1)
        self.calls = 0

    def __call__(self, module, batch):
        self.calls += 1
        ids = torch.where(torch.rand(batch.shape, generator=self.generator) < 0.1, 5, batch)
        return module(input_ids=ids, labels=ids).loss, {}

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def _truncate(step, marker):
    path = step / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])


def _plant(name):
    def plant(step, marker):
        with open(step / name, "wb") as f:
            pickle.dump(Evil(marker), f)

    return plant


# what is done to the steps of a finished 4-step run (checkpoints at 2 and 4) before it is run again
DAMAGE = {
    "truncated model.safetensors": ({"step-00000004": _truncate}, "SafetensorError"),
    "planted custom_checkpoint_0.pkl": ({"step-00000004": _plant("custom_checkpoint_0.pkl")}, "custom_checkpoint"),
    "pickle as loss_state.pt": ({"step-00000004": _plant("loss_state.pt")}, "UnpicklingError"),
    "pickle as data_generator.pt": ({"step-00000004": _plant("data_generator.pt")}, "UnpicklingError"),
    "every step damaged": ({"step-00000004": _truncate, "step-00000002": _plant("loss_state.pt")}, "no training-state step"),
}


@pytest.mark.parametrize("damage, words", DAMAGE.values(), ids=DAMAGE.keys())
def test_resume_loads_only_what_this_project_wrote_and_falls_back_a_step(damage, words, tmp_path, caplog):
    marker = tmp_path / "pwned"
    config = TrainConfig(max_steps=4, batch_size=2, micro_batch_size=2, checkpoint_every=2, learning_rate=1e-3)
    data = [torch.randint(3, 200, (12,), generator=torch.Generator().manual_seed(i)) for i in range(8)]

    def run():
        model, _ = load_model("tiny-random-llama")
        loss = NoisyLoss()
        history = train(model, [{"params": model.parameters()}], loss, data, torch.stack, config, progress=False, checkpoint_dir=tmp_path / "state")
        return history, loss.calls

    whole, _ = run()
    for step, harm in damage.items():
        harm(tmp_path / "state" / step, marker)
    if words == "no training-state step":
        with pytest.raises(CompressionsError, match="no training-state step .* can be loaded"):
            run()
    else:
        history, calls = run()
        assert history == whole and calls == 2  # steps 3-4 again, from step 2, exactly as before
        assert words in caplog.text and "trying the one before" in caplog.text
        assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["damaged-step-00000004", "step-00000002", "step-00000004"]
    assert not marker.exists()  # no pickled code ran
