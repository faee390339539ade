"""LoRA settings shared by the trainers that adapt an LLM (gist `lora` mode, the SQuAD reader, the
compressor pipeline), and putting a peft adapter on a model: a new one, or a saved one from its folder."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from compressions.errors import ConfigError


@dataclass
class LoraSettings:
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata={"help": "module names that get adapters"},
    )

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora.r must be >= 1, got {self.r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("lora.target_modules must name at least one module")

    def peft_config(self, **extra) -> LoraConfig:
        """The peft LoraConfig of these settings; `extra` adds peft-only fields (task_type, ...)."""
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            **extra,
        )


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    # peft 0.21 reads `is_gradient_checkpointing`, which transformers 5.23 deprecated (a FutureWarning
    # that the test suite turns into an error); nothing to act on in our code.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def add_adapter(model: PreTrainedModel, config: PeftConfig) -> PeftModel:
    with quiet_peft():
        return get_peft_model(model, config)


def load_adapter(model: PreTrainedModel, path: str | Path) -> PeftModel:
    with quiet_peft():
        return PeftModel.from_pretrained(model, path)
