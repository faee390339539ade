"""A gist model (Mu et al. 2023) as the library loads it (`load_compressor("gist", model=DIR)`, or the folder
alone): an instruction becomes the K/V of its gist tokens, and the question is read as its input (Alpaca
layout), not a SQuAD context slot."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.gist.cache import GistCache, compress, generate
from compressions.models import load_model
from compressions.store.saved import GIST_MODEL, checked_settings, model_dir


@dataclass
class GistCompressor:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    settings: dict  # the gist_config.json saved beside the model

    @classmethod
    def from_saved(cls, folder: str, device: str = "cpu", **given) -> GistCompressor:
        """The registry's entry point: only a gist model compresses (a control's folder is refused, named)."""
        settings = checked_settings(folder, GIST_MODEL, **given)
        model, tokenizer = load_model(model_dir(folder), device=device)
        return cls(model, tokenizer, settings)

    def compress(self, context: str, question: str = "") -> GistCache:
        return compress(self.model, self.tokenizer, [context], self.settings["num_gist"], self.settings["prompt_format"])

    def answer(self, context: str | GistCache, question: str, max_new_tokens: int = 128) -> str:
        cache = context if isinstance(context, GistCache) else self.compress(context)
        generated = generate(self.model, self.tokenizer, cache, [question], max_new_tokens)
        return self.tokenizer.decode(generated[0], skip_special_tokens=True).strip()
