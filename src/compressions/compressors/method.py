"""A trained compressor as a context method of the SQuAD harness (`--method learned --checkpoint DIR`).

`compress` returns the slot's placeholder ids with the soft tokens as `embeddings`; the harness puts
them in the prompt's context slot, so the prompt around them is the one every text method gets.
A compressor that makes a cache (`gist_kv`) returns it as a KV method does (`kv`: the decoder's cache of
the prompt prefix, then the gists' entries), and the harness reads the question after it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from compressions.compressors.gist_kv import GistEntries
from compressions.compressors.pipeline import SoftPromptModel
from compressions.errors import ConfigError
from compressions.methods.base import CompressedContext, ContextCompressor, SavedReader, Target, check_context
from compressions.models.kept_cache import KeptCache
from compressions.store.saved import COMPRESSOR, checked_settings


class LearnedContext(ContextCompressor):
    def __init__(self, pipeline: SoftPromptModel):
        self.pipeline = pipeline.eval()
        self.name = f"learned-{pipeline.config.arch}"
        self.slot_ids = pipeline.slot_ids()
        self.question_aware = pipeline.config.question_aware
        self.output = "kv" if pipeline.compressor.makes_cache else "soft"

    @classmethod
    def from_checkpoint(cls, folder: str | Path, device: str = "cpu") -> LearnedContext:
        return cls(SoftPromptModel.from_pretrained(folder, device=device))

    @classmethod
    def from_saved(cls, folder: str | Path, device: str = "cpu", **given) -> LearnedContext:
        """The registry's entry point: a checkpoint refuses a model, budget or reader other than its own
        (checked before anything loads)."""
        checked_settings(folder, COMPRESSOR, **given)
        return cls.from_checkpoint(folder, device)

    @property
    def trains_decoder(self) -> bool:
        """Whether its decoder wears an adapter trained with it (pipeline.use_lora), so reads text its own way."""
        return self.pipeline.config.use_lora

    @property
    def saved_reader(self) -> SavedReader:
        """Its LLM (with the reader merged in), M and the prompt it was trained with, solved examples included."""
        trained = self.pipeline.config
        return SavedReader(self.pipeline.llm, self.pipeline.tokenizer, trained.prompt, trained.budget, trained.model, trained.reader, self.pipeline.shots)

    def reading(self):
        return self.pipeline.decoding()

    @torch.no_grad()
    def compress(self, context: str, question: str, budget: int | None = None, target: Target | None = None) -> CompressedContext:
        check_context(context)
        if budget not in (None, self.pipeline.config.budget):
            raise ConfigError(f"this checkpoint makes {self.pipeline.config.budget} soft tokens, not {budget}")
        start = time.perf_counter()
        device = self.pipeline.device
        ids = torch.tensor([self.pipeline.compressor_ids(context, question)], device=device)
        mask = torch.ones_like(ids, dtype=torch.bool)
        m = self.pipeline.config.budget
        if self.pipeline.compressor.makes_cache:
            kept = self._kept_cache(self.pipeline.compressor(self.pipeline, ids, mask))
            return CompressedContext(self.slot_ids, f"<{m} gist KV entries per layer and head>", time.perf_counter() - start, kv=kept)
        soft, _ = self.pipeline.compress(ids, mask)
        return CompressedContext(self.slot_ids, f"<{m} soft tokens>", time.perf_counter() - start, embeddings=soft[0])

    def _kept_cache(self, gist: GistEntries) -> KeptCache:
        """One context's gist entries after the decoder's prompt-prefix cache, as the harness reads KV methods."""
        read = slice(None) if gist.mask is None else gist.mask[0]  # the entries of a short context's padding are dropped
        keys, values = torch.stack([k[0][:, read] for k in gist.keys]), torch.stack([v[0][:, read] for v in gist.values])  # (L, n_kv, M, hd)
        positions = gist.positions[0][read].expand(*keys.shape[:3])
        return KeptCache(self.pipeline.decoder_prefix(), keys, values, positions, int(gist.next_positions[0]))
