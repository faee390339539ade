"""Shared fixtures. The fast core runs on the tiny random model and synthetic data; tests marked
`slow` load the embedded SmolLM2; tests that read ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
