"""Gist caching: prefill instruction + gists once, keep only the gists' keys and values, and generate
from them for any number of inputs, batched (many (cache, input) pairs of any instruction lengths).

Tokens after the gists keep their original positions: the cache stores, per example, the position of
the first token after its gists (`next_positions`), and generation passes explicit `position_ids`
(without them RoPE would count from the cache length and the output is wrong). Every batch gets a
fresh `DynamicCache`, since a forward appends to the cache it is given.

The same path serves `neg_control` models with nothing kept (`keep="none"`): their mask lets the tail
see only itself, so generating from the tail alone at its original positions is exactly that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.gist.data import prompt_head, prompt_tail
from compressions.gist.tokens import gist_token_id
from compressions.models.generation import (
    cached_head_inputs,
    left_pad,
    length_batches,
    position_ids,
    stop_token_ids,
    until_stop,
)
from compressions.models.quantize import dequantize_int8, int8_roundtrip, quantize_int8
from compressions.progress import tqdm

FORMAT_VERSION = "1"
KEEP = ("gist", "none")


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def model_fingerprint(model: PreTrainedModel, gist_id: int) -> str:
    """Architecture, the gist embedding row and the first values of every weight tensor: cheap, and
    different for any two trainings (full fine-tunes and merged adapters change every sampled row)."""
    digest = hashlib.sha256(f"{type(model).__name__}:{model.config.num_hidden_layers}".encode())
    digest.update(model.get_input_embeddings().weight[gist_id].detach().float().cpu().numpy().tobytes())
    for name, weight in model.state_dict().items():
        digest.update(name.encode() + weight.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class GistCache:
    """Gist KV of N instructions: `keys`/`values` (L, N, n_kv, K_kept, head_dim), `next_positions` (N,)."""

    keys: torch.Tensor
    values: torch.Tensor
    next_positions: torch.Tensor
    num_gist: int
    model_id: str
    model_fingerprint: str
    tokenizer_fingerprint: str
    prompt_format: str = "plain"

    @property
    def size(self) -> int:
        return self.keys.shape[1]

    @property
    def kept(self) -> int:
        """KV entries per example: K for gist models, 0 for neg_control."""
        return self.keys.shape[3]

    def select(self, rows: list[int]) -> GistCache:
        """The caches of `rows`, in that order (repeats allowed: one instruction for many inputs)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.keys.device)
        return GistCache(
            self.keys[:, index], self.values[:, index], self.next_positions[index.cpu()], self.num_gist,
            self.model_id, self.model_fingerprint, self.tokenizer_fingerprint, self.prompt_format,
        )  # fmt: skip

    def dynamic_cache(self, model: PreTrainedModel) -> DynamicCache:
        """A fresh transformers cache holding these KV (on the model's device)."""
        cache = DynamicCache(config=model.config)
        for layer, (k, v) in enumerate(zip(self.keys, self.values)):
            if self.kept:
                cache.update(k.to(model.device), v.to(model.device), layer)
        return cache

    def check(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        """Refuse a cache made by another model or tokenizer (its KV would be meaningless)."""
        expected = model_fingerprint(model, gist_token_id(tokenizer))
        if self.model_fingerprint != expected:
            raise CompressionsError(
                f"this gist cache was made by model {self.model_id!r} (fingerprint {self.model_fingerprint}); "
                f"the model given is {model.config.name_or_path!r} (fingerprint {expected}): compress again with it"
            )
        if self.tokenizer_fingerprint != tokenizer_fingerprint(tokenizer):
            raise CompressionsError("this gist cache was made with another tokenizer: compress again with this one")
        if self.keys.dtype != model.dtype:
            raise CompressionsError(f"this gist cache holds {self.keys.dtype} KV; the model runs in {model.dtype}")

    def int8(self) -> GistCache:
        """This cache as it reads back from int8 storage (models/quantize.py)."""
        return dataclasses.replace(self, keys=int8_roundtrip(self.keys), values=int8_roundtrip(self.values))

    def save(self, path: str | Path, int8: bool = False) -> None:
        """safetensors with the fingerprints; `int8` stores the KV as int8 with a scale per token and head
        (about a quarter of fp32)."""
        metadata = {
            "format_version": FORMAT_VERSION,
            "num_gist": str(self.num_gist),
            "model_id": self.model_id,
            "model_fingerprint": self.model_fingerprint,
            "tokenizer_fingerprint": self.tokenizer_fingerprint,
            "prompt_format": self.prompt_format,
            "dtype": str(self.keys.dtype).removeprefix("torch."),
        }
        tensors = {"keys": self.keys, "values": self.values, "next_positions": self.next_positions}
        if int8:
            for name in ("keys", "values"):
                tensors[name], tensors[f"{name}_scale"] = quantize_int8(tensors[name])
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path) -> GistCache:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, KeyError, SafetensorError) as err:
            raise CompressionsError(f"{path}: not a gist cache file ({str(err).splitlines()[0]})") from None
        if meta.get("format_version") != FORMAT_VERSION or not {"keys", "values", "next_positions"} <= set(tensors):
            raise CompressionsError(f"{path}: gist cache format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        for name in ("keys", "values"):
            if f"{name}_scale" in tensors:  # stored as int8
                tensors[name] = dequantize_int8(tensors[name], tensors[f"{name}_scale"], getattr(torch, meta["dtype"]))
        return cls(
            tensors["keys"], tensors["values"], tensors["next_positions"], int(meta["num_gist"]), meta["model_id"],
            meta["model_fingerprint"], meta["tokenizer_fingerprint"], meta["prompt_format"],
        )  # fmt: skip


@torch.no_grad()
def compress(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    instructions: list[str],
    num_gist: int,
    prompt_format: str = "plain",
    keep: str = "gist",
    batch_size: int = 8,
    progress: bool = False,
) -> GistCache:
    """Prefill each instruction + K gists (left-padded batches); keep the gists' KV of every layer."""
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    if num_gist < 1:
        raise CompressionsError(f"num_gist must be >= 1 for a gist cache, got {num_gist}")
    gist_id = gist_token_id(tokenizer)
    heads = [prompt_head(tokenizer, text, num_gist, gist_id, prompt_format) for text in instructions]
    kept = num_gist if keep == "gist" else 0
    keys, values, nexts = [None] * len(heads), [None] * len(heads), [len(h) for h in heads]
    for rows in tqdm(length_batches(nexts, batch_size), desc="compress", disable=not progress):
        ids, mask = left_pad([heads[i] for i in rows], tokenizer.pad_token_id)
        cache = DynamicCache(config=model.config)
        # No special mask: nothing follows the gists yet, so causal + padding is the gist mask here.
        model(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            position_ids=position_ids(mask).to(model.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,  # only the KV is wanted: skip the output head on every other position
        )
        width = ids.shape[1]
        layer_k = torch.stack([layer.keys[:, :, width - kept :] for layer in cache.layers])  # (L, b, n_kv, kept, hd)
        layer_v = torch.stack([layer.values[:, :, width - kept :] for layer in cache.layers])
        for j, row in enumerate(rows):
            keys[row], values[row] = layer_k[:, j], layer_v[:, j]
    return GistCache(
        keys=torch.stack(keys, dim=1),  # (L, N, n_kv, kept, hd)
        values=torch.stack(values, dim=1),
        next_positions=torch.tensor(nexts, dtype=torch.long),
        num_gist=num_gist,
        model_id=str(model.config.name_or_path),
        model_fingerprint=model_fingerprint(model, gist_id),
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        prompt_format=prompt_format,
    )


def tail_inputs(
    cache: GistCache, tails: list[list[int]], pad_id: int, gist_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) laid out `[gists (cached) | padding | tail]` for the
    rows of `cache`; the tails keep their original positions."""
    gists = torch.full((len(tails), cache.kept), gist_id)
    return cached_head_inputs(gists, tails, pad_id, cache.next_positions)


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cache: GistCache,
    inputs: list[str],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> list[list[int]]:
    """New token ids (up to and including EOS) for each (cache row i, inputs[i]) pair, in input order."""
    if len(inputs) != cache.size:
        raise CompressionsError(f"{len(inputs)} inputs for a gist cache of {cache.size} instructions: use cache.select")
    cache.check(model, tokenizer)
    gist_id = gist_token_id(tokenizer)
    tails = [prompt_tail(tokenizer, text, cache.num_gist, cache.prompt_format) for text in inputs]
    stops = stop_token_ids(model, tokenizer)
    outputs: list[list[int]] = [[] for _ in inputs]
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for rows in tqdm(length_batches([len(t) for t in tails], batch_size), desc="generate", disable=not progress):
            part = cache.select(rows)
            # generate skips the cached ids and reads the rest.
            ids, mask, positions = tail_inputs(part, [tails[i] for i in rows], tokenizer.pad_token_id, gist_id)
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                position_ids=positions.to(model.device),
                cache=part.dynamic_cache(model),
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
            for row, seq in zip(rows, out[:, ids.shape[1] :].tolist()):
                outputs[row] = until_stop(seq, set(stops))
    return outputs

