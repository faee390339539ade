"""`llmlingua`: LLMLingua (Jiang et al., 2023) token-level pruning through the `llmlingua` package
(optional extra `llmlingua`), on a local causal LM (default: the target model).

What the adapter changes around the package's own `compress_prompt`:
- `iterative_size` defaults to the context's length in the LM's tokens: with the package default
  (200) only the first 200-token window is compressed and the budget is missed (measured: target 32,
  kept 118); a window longer than the context makes it keep everything (a negative slice index).
- the question is passed for LLMLingua's budget arithmetic but not appended to the result
  (`concate_question=False`), so what comes back is context only.
- the result is re-tokenised in the target tokenizer and cut to M: the budget is exact and the kept
  count is ours, not the package's report.
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.methods.base import BudgetedCompressor, require
from compressions.methods.language_model import TARGET, adapters_off, compressor_model


class LLMLingua(BudgetedCompressor):
    name = "llmlingua"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        target_model: PreTrainedModel | None = None,
        model: str = TARGET,
        iterative_size: int = 0,
        dtype: str = "float32",
        device: str = "cpu",
    ):
        super().__init__(tokenizer)
        require("llmlingua", self.name, "llmlingua")
        from compressions.methods.llmlingua_local import LocalPromptCompressor

        self.lm, lm_tokenizer = compressor_model(model, self.name, target_model, tokenizer, dtype, device)
        self.compressor = LocalPromptCompressor(self.lm, lm_tokenizer)
        self.iterative_size = iterative_size  # 0: the whole context in one window

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        # Exactly the context's length: one window over everything (a longer one compresses nothing).
        window = self.iterative_size or self.compressor.get_token_length(context, add_special_tokens=False)
        with adapters_off(self.lm):
            result = self.compressor.compress_prompt(
                [context], question=question, target_token=budget, iterative_size=window, concate_question=False
            )
        return self.tokenizer(result["compressed_prompt"], add_special_tokens=False).input_ids[:budget]
