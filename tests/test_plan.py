"""benchmarks/plan.py: its FLOP counts against a hand count on the tiny model, and its accounting end to end."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plan.py"


@pytest.fixture(scope="module")
def plan():
    spec = importlib.util.spec_from_file_location("plan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hand_forward_flops(config, batch, seq):
    """2 x (multiply-adds) of every matmul: the linear layers (lm_head included) and, per layer, Q K^T and A V."""
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    linear_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))  # lm_head included
    head_dim = config.hidden_size // config.num_attention_heads
    attention = 2 * 2 * batch * config.num_attention_heads * seq * seq * head_dim * config.num_hidden_layers
    return 2 * linear_params * batch * seq + attention


def test_the_flop_counter_on_the_meta_device_matches_a_hand_count(plan):
    config = plan.model_config("tiny-random-llama")
    model = plan.meta_model(config)
    ids = torch.zeros(2, 16, dtype=torch.long, device="meta")
    with torch.no_grad(), plan.counting(model) as forward:
        model(input_ids=ids)
    hand = _hand_forward_flops(config, 2, 16)
    assert forward["flops"] == hand  # exact: the counter sees every matmul, and only matmuls count
    step = plan.lm_step(model, 2, 16)  # forward + backward: the backward's matmuls are twice the forward's
    assert step["flops"] == pytest.approx(3 * forward["flops"], rel=0.03)
    assert step["activation_bytes"] > 0 and forward["activation_bytes"] == 0  # nothing saved without autograd


def test_lora_trains_only_the_adapters_and_frozen_layers_cost_no_weight_gradients(plan):
    config = plan.model_config("tiny-random-llama")
    full, lora = plan.meta_model(config), plan.meta_model(config, ["q_proj", "v_proj"], lora_r=2)
    total, trainable, layer = plan.parameter_counts(lora)
    d, kv = config.hidden_size, config.hidden_size // config.num_attention_heads * config.num_key_value_heads
    assert trainable == config.num_hidden_layers * 2 * ((d + d) + (d + kv))  # r x (in + out) for q (d -> d) and v (d -> kv)
    assert total == sum(p.numel() for p in full.parameters()) + trainable
    assert plan.lm_step(lora, 2, 16)["flops"] < plan.lm_step(full, 2, 16)["flops"]


def test_the_8b_config_has_llama_3_1_8b_shapes(plan):
    config = plan.model_config("llama-3.1-8b")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads) == (4096, 32, 32, 8)
    assert (config.intermediate_size, config.vocab_size, config.rope_parameters["rope_theta"]) == (14336, 128256, 500000.0)
    assert plan.parameter_counts(plan.meta_model(config))[0] == 8_030_261_248


def test_the_script_runs_on_the_tiny_config(plan, tmp_path, capsys):
    args = plan.build_parser().parse_args(["--model", "tiny-random-llama", "--budgets", "4", "8", "--out", str(tmp_path / "p.json")])
    result = plan.main(args)
    printed = capsys.readouterr().out
    assert "| gist full (FSDP) | 256 | 4 | 2 | 6375 |" in printed and "Seed grid, 4 archs x 2 budgets = 8 cells" in printed
    assert json.loads((tmp_path / "p.json").read_text())["facts"]["gist_gpus"] == 4  # fsdp_8b.yaml's num_processes
    full = result["gist"][0]
    total = result["facts"]["parameters"]
    layer = plan.parameter_counts(plan.meta_model(plan.model_config("tiny-random-llama")))[2]
    assert full["states_gib"] * plan.GIB == pytest.approx(16 * total / 4 + 4 * layer)
    cells = [r for r in result["compressor"] if r["run"] == "compressor full"]
    assert [r["budget"] for r in cells] == [4, 8] and cells[0]["tflops_per_step"] < cells[1]["tflops_per_step"]
    assert cells[0]["hours"] == pytest.approx(cells[0]["tflops_per_step"] * 1e12 * 2000 / (989e12 * 0.4) / 3600)
