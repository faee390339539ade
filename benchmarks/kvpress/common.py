"""What both sides of the comparison share (each runs in its own environment, so only torch and
transformers): the output folder, the model and its loading, the budget."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

HERE = Path("runs/benchmarks/kvpress")  # outputs, from the repo root
HERE.mkdir(parents=True, exist_ok=True)
MODEL = Path.home() / ".cache/compressions/models/SmolLM2-135M-Instruct"  # the converted embedded model
M = 32


def load_model() -> AutoModelForCausalLM:
    """SmolLM2-135M-Instruct in fp32 with eager attention (the only one that returns attention weights)."""
    torch.set_num_threads(1)
    return AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager").eval()
