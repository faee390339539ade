"""SQuAD prompt formats. A prompt is split around the context, `prefix + context + suffix`, so that
every method (truncation, pruning, soft tokens) swaps only the context and nothing else changes.

Formats:
- `chat`: the model's chat template; the user turn holds instruction, context and question; the
  assistant turn starts with the anchor (e.g. "Answer:") when one is set.
- `completion`: plain text `Context:\n...\nQuestion: ...\nAnswer:`; optional solved examples first.
The context sits between newlines so tokenising the three parts apart equals tokenising them together
at the boundaries for BPE tokenizers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from compressions.data.solved_examples import SOLVED_EXAMPLES
from compressions.data.squad import SquadExample
from compressions.errors import ConfigError

FORMATS = ("chat", "completion")
_SLOT = "\u2063CONTEXT\u2063"  # invisible separators: never in real text, untouched by templates


@dataclass
class SquadPromptConfig:
    # completion with 2 solved examples answered with spans most often on SmolLM2 (README: prompt format)
    format: str = field(default="completion", metadata={"help": "chat | completion"})
    instruction: str = field(
        default="Answer the question with a short span copied from the context.",
        metadata={"help": "first line of the prompt (user turn in chat)"},
    )
    anchor: str | None = field(default="Answer:", metadata={"help": "text the answer follows; empty for none"})
    shots: int = field(default=2, metadata={"help": "solved examples shown first (from the train split)"})

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"prompt.format must be one of {FORMATS}, got {self.format!r}")
        if self.shots < 0:
            raise ConfigError(f"prompt.shots must be >= 0, got {self.shots}")


@dataclass(frozen=True)
class PromptParts:
    prefix: str
    suffix: str


def _block(context: str, question: str) -> str:
    return f"Context:\n{context}\nQuestion: {question}"


def squad_prompt(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    config: SquadPromptConfig,
    shots: list[SquadExample] = (),
) -> PromptParts:
    """The text before and after the context for one question."""
    anchor = config.anchor or ""
    if config.format == "completion":
        solved = "".join(f"{_block(s.context, s.question)}\n{anchor} {s.answers[0]}\n\n" for s in shots)
        text = f"{config.instruction}\n\n{solved}{_block(_SLOT, question)}\n{anchor}"
    else:
        messages = []
        for s in shots:
            messages.append({"role": "user", "content": f"{config.instruction}\n\n{_block(s.context, s.question)}"})
            messages.append({"role": "assistant", "content": f"{anchor} {s.answers[0]}".strip()})
        messages.append({"role": "user", "content": f"{config.instruction}\n\n{_block(_SLOT, question)}"})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + anchor
    prefix, suffix = text.split(_SLOT)
    return PromptParts(prefix, suffix)


def prompt_part_ids(tokenizer: PreTrainedTokenizerBase, parts: PromptParts) -> tuple[list[int], list[int]]:
    """Token ids of the prefix (with the tokenizer's special tokens) and of the suffix (without)."""
    return tokenizer(parts.prefix).input_ids, tokenizer(parts.suffix, add_special_tokens=False).input_ids


def answer_ids(tokenizer: PreTrainedTokenizerBase, parts: PromptParts, answer: str) -> list[int]:
    """The answer's tokens then EOS, as training teaches and the harness scores them: after a space, unless
    the prompt already ends in whitespace (without an anchor it ends in a newline)."""
    text = answer if parts.suffix[-1:].isspace() else f" {answer}"
    return tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


@dataclass(frozen=True)
class SquadPrompt:
    """The layout around the context slot for one tokenizer, prompt config and solved examples:
    `prefix ids + slot + suffix ids [+ answer ids + EOS]`. The harness, the reader's training, the
    compressors' batches, the window fitting, the KV methods and the answer-length diagnostic all ask
    this one object, so what training teaches and what evaluation reads cannot drift apart."""

    tokenizer: PreTrainedTokenizerBase
    config: SquadPromptConfig = field(default_factory=SquadPromptConfig)
    shots: tuple[SquadExample, ...] = ()

    def parts(self, question: str) -> PromptParts:
        return squad_prompt(self.tokenizer, question, self.config, list(self.shots))

    def ids(self, question: str) -> tuple[list[int], list[int]]:
        """(prefix ids, suffix ids) around the slot for this question."""
        return prompt_part_ids(self.tokenizer, self.parts(question))

    def with_context(self, question: str, context_ids: list[int]) -> list[int]:
        """Token ids of `prefix + context + suffix`, the context already in ids (any method's output)."""
        prefix, suffix = self.ids(question)
        return prefix + context_ids + suffix

    def answer_ids(self, answer: str) -> list[int]:
        """The answer's tokens then EOS, as training teaches and the harness scores them (see answer_ids)."""
        return answer_ids(self.tokenizer, self.parts("?"), answer)


def pick_shots(train: list[SquadExample], k: int) -> list[SquadExample]:
    """k solved examples with the shortest contexts, from distinct paragraphs (deterministic)."""
    seen, shots = set(), []
    for example in sorted(train, key=lambda e: (len(e.context), e.id)):
        if len(shots) == k:
            break
        if example.context not in seen:
            seen.add(example.context)
            shots.append(example)
    return shots


def solved_examples(k: int, train: list[SquadExample] = ()) -> list[SquadExample]:
    """The prompt's k solved examples: `pick_shots` over `train` (a train split), or without one the shipped
    examples the harness picks from the shared SQuAD file (at most 2)."""
    shots = pick_shots(list(train) or list(SOLVED_EXAMPLES), k) if k else []
    if len(shots) < k:
        among = f"among the {len(train)} usable train questions (malformed records were skipped as read, each named in a warning)" if train else "shipped"
        raise ConfigError(f"prompt.shots={k}: only {len(shots)} solved examples {among}; pass a train split with more, or fewer shots")
    return shots
