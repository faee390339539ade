"""`abstractive`: a language model summarises the context for the question, then the summary is cut
to M target tokens.

The summariser is the target model itself by default (`model=target`), or any causal or
encoder-decoder model (`model=<alias, dir or hub id>`, e.g. a BART or T5 summariser). Its
generation time is compression cost and is counted in `seconds`.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.baselines.base import BudgetedCompressor
from compressions.baselines.language_model import TARGET, adapters_off, compressor_model
from compressions.errors import CompressionsError
from compressions.models.generation import generate_greedy

CAUSAL_PROMPT = (
    "Summarise the context in at most {words} words. Keep every fact needed to answer the question.\n\n"
    "Context:\n{context}\n\nQuestion: {question}"
)
SEQ2SEQ_PROMPT = "summarize: {context}"  # T5's task prefix; BART-style summarisers read it as text
WORDS_PER_TOKEN = 0.75  # English BPE: about four tokens for three words


class Abstractive(BudgetedCompressor):
    name = "abstractive"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        target_model: PreTrainedModel | None = None,
        model: str = TARGET,
        prompt: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
    ):
        super().__init__(tokenizer)
        self.lm, self.lm_tokenizer = compressor_model(
            model, self.name, target_model, tokenizer, dtype, device, causal_only=False
        )
        self.seq2seq = bool(self.lm.config.is_encoder_decoder)
        self.prompt = prompt or (SEQ2SEQ_PROMPT if self.seq2seq else CAUSAL_PROMPT)
        if "{context}" not in self.prompt:
            raise CompressionsError(f"the abstractive prompt must contain {{context}}: {self.prompt!r}")
        try:
            self.prompt.format(context="", question="", words=1)
        except (KeyError, IndexError, ValueError) as err:
            raise CompressionsError(f"bad abstractive prompt (slots: context, question, words): {err!r}") from None

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        summary = self.summarise(context, question, budget)
        return self.tokenizer(summary, add_special_tokens=False).input_ids[:budget]

    def summarise(self, context: str, question: str, budget: int) -> str:
        text = self.prompt.format(context=context, question=question, words=max(1, round(budget * WORDS_PER_TOKEN)))
        # In its own tokens the summariser may need more than M to say M target tokens' worth.
        max_new_tokens = budget if self.lm_tokenizer is self.tokenizer else 2 * budget
        with adapters_off(self.lm):
            if self.seq2seq:
                return self._seq2seq(text, max_new_tokens)
            return self._causal(text, max_new_tokens)

    def _causal(self, text: str, max_new_tokens: int) -> str:
        tokenizer = self.lm_tokenizer
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        prompt = tokenizer(text).input_ids
        new = generate_greedy(self.lm, tokenizer, [prompt], max_new_tokens, batch_size=1, stop_at_newline=False, progress=False)
        return tokenizer.decode(new[0], skip_special_tokens=True).strip()

    @torch.no_grad()
    def _seq2seq(self, text: str, max_new_tokens: int) -> str:
        encoded = self.lm_tokenizer(text, return_tensors="pt", truncation=True).to(self.lm.device)
        out = self.lm.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        return self.lm_tokenizer.decode(out[0], skip_special_tokens=True).strip()
