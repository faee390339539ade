"""Two CPU processes (gloo) train exactly like one process with the same global batch (training.loop)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _launch(processes: int, out: Path) -> tuple[dict, dict]:
    out.mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    subprocess.run([*torchrun, str(REPO / "tests" / "ddp_job.py"), str(out)], env=ENV, check=True, timeout=120)
    history = json.loads((out / "history.json").read_text())
    return history, {run: torch.load(out / f"{run}.pt") for run in history}


def test_two_processes_match_one_with_accumulation(tmp_path):
    one, params_one = _launch(1, tmp_path / "one")
    two, params_two = _launch(2, tmp_path / "two")
    for run in ("shuffled", "grouped"):
        assert [r["step"] for r in two[run]] == list(range(1, 11))
        for a, b in zip(one[run], two[run]):
            assert b == pytest.approx(a, rel=1e-5)  # loss over the global batch, warmup and decay of the LR
        for name, p in params_one[run].items():
            torch.testing.assert_close(params_two[run][name], p, rtol=1e-4, atol=1e-5)
    assert one["shuffled"] != one["grouped"]  # the length-grouped order is really another order


def test_a_gist_model_trained_on_two_processes_saves_the_weights_of_one(tmp_path):
    """The gist trainer saves the state dict gathered from every process (the path FSDP needs: there each
    process holds a shard). Accelerate runs FSDP only on GPUs, so on CPU this checks the gathering and the
    save on two gloo processes against one process."""
    from safetensors.torch import load_file

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    saved = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        subprocess.run([*torchrun, f"--nproc_per_node={n}", str(REPO / "tests" / "gist_ddp_job.py"), str(out)], env=ENV, check=True, timeout=300)
        saved[n] = load_file(out / "model" / "model.safetensors")
    assert saved[1].keys() == saved[2].keys()
    for name, tensor in saved[1].items():
        torch.testing.assert_close(saved[2][name], tensor, rtol=1e-4, atol=1e-5)
    from compressions.models import load_model

    initial = load_model("tiny-random-llama")[0].state_dict()
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(saved[2][name], initial[name])  # what was saved is the trained model


@pytest.mark.parametrize("name", ["ddp", "fsdp_8b", "cpu_2proc"])
def test_accelerate_configs_load(name):
    config = load_config_from_file(str(REPO / "configs" / "accelerate" / f"{name}.yaml"))  # unknown keys raise
    assert config.num_machines == 1 and config.mixed_precision == ("no" if config.use_cpu else "bf16")
    if name == "fsdp_8b":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == LlamaDecoderLayer.__name__


def test_the_package_runs_as_a_module():  # what `accelerate launch -m compressions ...` starts
    out = subprocess.run([sys.executable, "-m", "compressions", "--help"], env=ENV, capture_output=True, text=True, check=True)
    assert "gist" in out.stdout
