"""Optimisation settings shared by every trainer (gist models, the SQuAD reader, compressors)."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressions.config import check_choice
from compressions.errors import ConfigError


@dataclass
class TrainConfig:
    learning_rate: float = field(default=1e-4, metadata={"help": "peak LR (param groups may set their own)"})
    weight_decay: float = 0.0
    scheduler: str = field(default="cosine", metadata={"help": "any transformers.get_scheduler name"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of max_steps spent warming up"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "global examples per optimizer step (all devices)"})
    micro_batch_size: int = field(default=8, metadata={"help": "examples per forward on one device"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "0 disables clipping"})
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = field(
        default=0, metadata={"help": "optimizer steps between resumable training-state checkpoints; 0: none"}
    )
    mixed_precision: str = field(default="no", metadata={"help": "no | bf16 | fp16 (Accelerate)"})

    def validate(self) -> None:
        if not self.learning_rate > 0:  # a zero or negative rate trains nothing or climbs the loss, silently
            raise ConfigError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps < 1:
            raise ConfigError(f"train.max_steps must be >= 1, got {self.max_steps}")
        if self.micro_batch_size < 1 or self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"train.batch_size ({self.batch_size}) must be a positive multiple of "
                f"train.micro_batch_size ({self.micro_batch_size})"
            )
        check_choice("train.mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        if self.checkpoint_every < 0:
            raise ConfigError(f"train.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def accumulation_steps(self, world_size: int) -> int:
        """Micro-batches per device per optimizer step, so the global batch is the same on any world size."""
        per_step = self.micro_batch_size * world_size
        if self.batch_size % per_step:
            raise ConfigError(
                f"train.batch_size ({self.batch_size}) must be a multiple of micro_batch_size x processes ({per_step})"
            )
        return self.batch_size // per_step
