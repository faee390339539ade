"""The language model a compressor runs on (scorer, summariser, LLMLingua's small LM).

`model="target"` (the default everywhere) reuses the model under evaluation, passed in by the
harness, so no second copy is loaded; any alias, local directory or hub id loads that model once
per process. A compressor never runs through a reader's LoRA adapter: both readers must see the
same compressed contexts.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

from peft import PeftModel
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.models import load_model
from compressions.models.loading import ALIASES

TARGET = "target"


def compressor_model(
    name: str,
    method: str,
    target_model: PreTrainedModel | None,
    target_tokenizer: PreTrainedTokenizerBase,
    dtype: str = "float32",
    device: str = "cpu",
    causal_only: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if name == TARGET:
        if target_model is None:
            raise CompressionsError(
                f"method {method!r} runs on the target model: pass target_model, or name a model "
                f"with --method-option model=<alias, dir or hub id>"
            )
        return target_model, target_tokenizer
    model, tokenizer = _load(name, dtype, device)
    if causal_only and model.config.is_encoder_decoder:
        raise CompressionsError(f"method {method!r} needs a causal LM; {name!r} is an encoder-decoder model")
    return model, tokenizer


@lru_cache(maxsize=2)
def _load(name: str, dtype: str, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Loaded once per process: a grid builds each method again for every budget."""
    if _is_encoder_decoder(name):
        model = AutoModelForSeq2SeqLM.from_pretrained(name, dtype=dtype, use_kernels=False).to(device).eval()  # as load_model
        return model, AutoTokenizer.from_pretrained(name)
    return load_model(name, dtype, device)


def _is_encoder_decoder(name: str) -> bool:
    if name in ALIASES:
        return False
    try:
        return bool(AutoConfig.from_pretrained(name).is_encoder_decoder)
    except (OSError, ValueError):  # unknown names fail in load_model, with its message
        return False


def adapters_off(model: PreTrainedModel) -> contextlib.AbstractContextManager:
    """Run a (possibly LoRA-wrapped) model as its base model."""
    return model.disable_adapter() if isinstance(model, PeftModel) else contextlib.nullcontext()
