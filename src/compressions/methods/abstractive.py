"""`abstractive`: a language model summarises the context for the question, then the summary is cut
to M target tokens.

The summariser is the target model itself by default (`model=target`), or any causal or
encoder-decoder model (`model=<alias, dir or hub id>`, e.g. a BART or T5 summariser). Its
generation time is compression cost and is counted in `seconds`. Summaries are generated
`batch_size` at a time (`select_many`): batching changes the time they take, not what they say
(greedy, and padding moves logits only by float rounding; tested equal to one at a time).
"""

from __future__ import annotations

import time

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.base import BudgetedCompressor
from compressions.methods.language_model import TARGET, adapters_off, compressor_model
from compressions.models.generation import generate_greedy, length_batches
from compressions.progress import tqdm

CAUSAL_PROMPT = (
    "Summarise the context in at most {words} words. Keep every fact needed to answer the question.\n\n"
    "Context:\n{context}\n\nQuestion: {question}"
)
SEQ2SEQ_PROMPT = "summarize: {context}"  # T5's task prefix; BART-style summarisers read it as text
WORDS_PER_TOKEN = 0.75  # English BPE: about four tokens for three words


class Abstractive(BudgetedCompressor):
    name = "abstractive"
    question_aware = True

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        target_model: PreTrainedModel | None = None,
        model: str = TARGET,
        prompt: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 8,
    ):
        super().__init__(tokenizer)
        if batch_size < 1:
            raise CompressionsError(f"the abstractive batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
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

    def select_many(
        self, contexts: list[str], questions: list[str], budget: int, ids: list[list[int]], progress: bool = False
    ) -> list[tuple[list[int], float]]:
        """Summaries `batch_size` at a time; each one's seconds are its share of its batch's generation."""
        prompts = [self.prompt_ids(c, q, budget) for c, q in zip(contexts, questions, strict=True)]
        # In its own tokens the summariser may need more than M to say M target tokens' worth.
        max_new_tokens = budget if self.lm_tokenizer is self.tokenizer else 2 * budget
        out: list[tuple[list[int], float]] = [([], 0.0)] * len(contexts)
        bar = tqdm(total=len(contexts), desc="summarise", unit="ex", disable=not progress)
        for rows in length_batches([len(p) for p in prompts], self.batch_size):
            start = time.perf_counter()
            summaries = self.summarise([prompts[r] for r in rows], max_new_tokens)
            share = (time.perf_counter() - start) / len(rows)
            for r, summary in zip(rows, summaries, strict=True):
                out[r] = (self.tokenizer(summary, add_special_tokens=False).input_ids[:budget], share)
            bar.update(len(rows))
        bar.close()
        return out

    def prompt_ids(self, context: str, question: str, budget: int) -> list[int]:
        """The summariser's prompt, in its own tokenizer."""
        tokenizer = self.lm_tokenizer
        text = self.prompt.format(context=context, question=question, words=max(1, round(budget * WORDS_PER_TOKEN)))
        if self.seq2seq:
            return tokenizer(text, truncation=True).input_ids
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        return tokenizer(text).input_ids

    @torch.no_grad()
    def summarise(self, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
        """One batch of prompts -> their summaries, greedy."""
        tokenizer = self.lm_tokenizer
        with adapters_off(self.lm):
            if self.seq2seq:  # padded on the right: encoder positions (BART's are learned) stay those of each prompt alone
                batch = tokenizer.pad({"input_ids": prompts}, padding_side="right", return_tensors="pt").to(self.lm.device)
                new = self.lm.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
            else:
                new = generate_greedy(
                    self.lm, tokenizer, prompts, max_new_tokens, batch_size=len(prompts), stop_at_newline=False, progress=False
                )
        return [summary.strip() for summary in tokenizer.batch_decode(new, skip_special_tokens=True)]
