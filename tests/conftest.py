"""Shared fixtures. The fast core runs on the tiny random model and synthetic data; tests marked
`slow` load the embedded SmolLM2; tests that read ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from compressions.compressors.method import LearnedContext
from compressions.compressors.selector import CONFIG, WEIGHTS, Probe
from compressions.evaluation.reading import read_compressed
from compressions.models import load_model

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("COMPRESSIONS_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny random Llama; do not train it in place (use tiny_fresh)."""
    return load_model("tiny-random-llama")


@pytest.fixture(scope="session")
def smollm2():
    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "squad" / "dev-A.json.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def steerable_tiny():
    """A fresh tiny LLM whose head can be confident: with its tied 0.02-std embeddings, a random tiny
    LLM's logits stay within about +-1.3; a larger final-norm gain lets it express an answer at all."""
    llm, tokenizer = load_model("tiny-random-llama")
    with torch.no_grad():
        llm.model.norm.weight.fill_(10.0)
    return llm, tokenizer


def learned_answers(pipeline, examples, max_new_tokens: int = 4, shift: int = 0) -> list[list[int]]:
    """New token ids of a learned checkpoint's answers through the harness's reading path; `shift` hands
    each question the compressed context of the example `shift` places on (another context's)."""
    method = LearnedContext(pipeline)
    compressed = [method.compress(e.context, e.question) for e in examples]
    compressed = compressed[shift:] + compressed[:shift]
    questions = [e.question for e in examples]
    return read_compressed(pipeline.llm, method, compressed, questions, pipeline.squad_prompt(), max_new_tokens=max_new_tokens)[1]


def saved_probe(folder, weight, layers, mean=None, std=None) -> str:
    """A `train selector` folder holding a probe with these weights over the given hidden states."""
    d = weight.shape[0]
    probe = Probe(torch.zeros(d) if mean is None else mean, torch.ones(d) if std is None else std, weight, torch.zeros(1))
    save_file({k: v.detach().contiguous() for k, v in probe.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps({"config": {"layers": layers, "model": "tiny-random-llama"}, "summary": {}}))
    return str(folder)


