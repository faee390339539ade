"""The submitit launcher (experiments.cluster) with submitit's local executor: each cell a separate job
process, on the tiny model and synthetic SQuAD data."""

import json
import os
import signal
import sys

import cloudpickle
import pytest
import torch
import yaml
from test_grid import _squad_file

from compressions.cli.main import main
from compressions.errors import ConfigError
from compressions.experiments import cluster
from compressions.experiments.grid import expand, load_grid
from compressions.training.checkpoints import latest_checkpoint


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "seconds" not in k}  # wall-clock times differ between runs


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # every job process is a new Python; keep each to one core
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # and the in-process run too: sums split over 2 threads differ in the last bits on some CPUs
    yield
    torch.set_num_threads(threads)


def _compressor_group(data: str, steps: int = 2) -> dict:
    return {
        "kind": "compressor",
        "resources": {"cpus": 1, "time": 10},
        "base": {
            "pipeline": {"model": "tiny-random-llama", "budget": 4},
            "data": data, "train_articles": 1, "train_limit": 8, "eval_limit": 2, "max_new_tokens": 2, "diagnostic_contexts": 2,
            "train": {"max_steps": steps, "batch_size": 2, "micro_batch_size": 2, "checkpoint_every": 1},
        },
        "axes": {"pipeline.arch": ["conv"]},
    }  # fmt: skip


def _grid(tmp_path, groups) -> str:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "local"), "resources": {"cpus": 1, "time": 5}, "groups": groups}))
    return str(path)


def _rows(folder):
    rows = json.loads((folder / "results_summary.json").read_text())
    return [_untimed(row) for row in rows]


def test_submitit_grid_gives_the_in_process_results_and_a_rerun_submits_nothing(tmp_path, capsys):
    data = str(_squad_file(tmp_path / "squad.json"))
    squad = {"model": "tiny-random-llama", "data": data, "train_articles": 1, "max_new_tokens": 2, "prompt": {"shots": 0}}
    path = _grid(tmp_path, [{"kind": "squad", "base": squad, "axes": {"method": ["prefix"], "budget": [4]}}, _compressor_group(data)])
    assert main(["grid", path, f"out={tmp_path / 'inline'}"]) == 0
    assert main(["grid", path, "--launcher", "submitit", "--cluster", "local"]) == 0
    printed = capsys.readouterr().out
    assert "2 run, 0 skipped, 0 failed" in printed
    local = tmp_path / "local"
    assert _rows(local) == _rows(tmp_path / "inline")
    assert [r["cell"] for r in _rows(local)] == ["conv-M4", "prefix-M4"]
    job = json.loads((local / "conv-M4" / "job.json").read_text())
    assert job["cluster"] == "local" and job["job_id"].isdigit() and job["earlier"] == []
    assert os.path.isfile(job["stdout"]) and os.path.dirname(job["stdout"]) == str(local / "conv-M4" / "submitit")

    stamps = {p: p.stat().st_mtime_ns for p in local.glob("*/job.json")}
    assert main(["grid", path, "--launcher", "submitit", "--cluster", "local"]) == 0
    assert "0 run, 2 skipped, 0 failed" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in local.glob("*/job.json")}  # nothing submitted again


class KilledAfterStep2(cluster.CellJob):
    """A cell job that dies by SIGKILL right after writing its step-2 checkpoint (as a node lost mid-training)."""

    def __call__(self):
        import compressions.training.loop as loop

        save = loop.save_checkpoint

        def save_then_die(*args, **kwargs):
            path = save(*args, **kwargs)
            if path.name == "step-00000002":
                os.kill(os.getpid(), signal.SIGKILL)
            return path

        loop.save_checkpoint = save_then_die
        return super().__call__()


def test_a_cell_killed_mid_training_is_resubmitted_and_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    data = str(_squad_file(tmp_path / "squad.json"))
    path = _grid(tmp_path, [_compressor_group(data, steps=4)])
    cell = tmp_path / "local" / "conv-M4"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job process cannot import this test file
    try:
        monkeypatch.setattr(cluster, "CellJob", KilledAfterStep2)
        summary = cluster.launch_grid(path, [], cluster="local", progress=False, echo=lambda _: None)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        monkeypatch.undo()
    assert summary["failed"] == ["conv-M4"]
    assert "ended without finishing the cell" in json.loads((cell / "error.json").read_text())["error"]
    assert latest_checkpoint(cell / "train_state").name == "step-00000002" and not (cell / "metrics.json").exists()
    first = json.loads((cell / "job.json").read_text())

    summary = cluster.launch_grid(path, [], cluster="local", progress=False, echo=lambda _: None)
    assert summary == {"finished": ["conv-M4"], "skipped": [], "failed": []}
    job = json.loads((cell / "job.json").read_text())
    assert job["job_id"] != first["job_id"] and job["earlier"][0]["job_id"] == first["job_id"]
    assert "resuming at step 2" in (cell / "run.log").read_text()
    assert not (cell / "error.json").exists()

    assert main(["grid", path, f"out={tmp_path / 'inline'}"]) == 0  # the same cell, never interrupted
    resumed, whole = (json.loads((f / "metrics.json").read_text()) for f in (cell, tmp_path / "inline" / "conv-M4"))
    assert _untimed(resumed) == _untimed(whole) and resumed["final_loss"] == whole["final_loss"]


def test_resources_merge_per_group_and_bad_values_fail_before_anything_runs(tmp_path):
    grid = {"resources": {"partition": "gpu", "time": 30}, "groups": [
        {"kind": "squad", "axes": {"method": ["full"]}},
        {"kind": "squad", "resources": {"gpus": 1, "slurm": {"account": "lab"}}, "axes": {"method": ["none"]}},
    ]}  # fmt: skip
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(grid))
    full, none = expand(*load_grid(tmp_path / "a.yaml"))
    assert (full.resources.gpus, full.resources.partition, full.resources.time) == (0, "gpu", 30)
    assert (none.resources.gpus, none.resources.partition, none.resources.time, none.resources.slurm) == (1, "gpu", 30, {"account": "lab"})
    executor = cluster.executor_for(tmp_path / "jobs", none.resources, "x", cluster="debug")
    assert executor.cluster == "debug"
    for bad, match in (({"gpus": 4}, r"groups\[1\].resources.gpus must be 0 or 1"), ({"gpu": 1}, r"groups\[1\].resources")):
        grid["groups"][1]["resources"] = bad
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(grid))
        with pytest.raises(ConfigError, match=match):
            load_grid(tmp_path / "b.yaml")


def test_the_debug_executor_runs_the_same_cell_function_in_this_process(tmp_path, capsys):
    data = str(_squad_file(tmp_path / "squad.json"))
    squad = {"model": "tiny-random-llama", "data": data, "train_articles": 1, "max_new_tokens": 2, "prompt": {"shots": 0}}
    path = _grid(tmp_path, [{"kind": "squad", "base": squad, "axes": {"method": ["full", "none"]}}])
    assert main(["grid", path, "--launcher", "submitit", "--cluster", "debug"]) == 0
    assert "2 run, 0 skipped, 0 failed" in capsys.readouterr().out
    assert json.loads((tmp_path / "local" / "full" / "job.json").read_text())["cluster"] == "debug"
    assert main(["grid", path, "--launcher", "submitit", "--devices", "0"]) == 2
    assert "--devices is the local queue's" in capsys.readouterr().err
