"""Settings of `compressions train reader`."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressions.config import check_choice
from compressions.data.prompts import SquadPromptConfig
from compressions.data.records import ON_ERROR
from compressions.errors import ConfigError
from compressions.models import DEFAULT_MODEL
from compressions.models.loading import check_placement
from compressions.training.config import TrainConfig
from compressions.training.lora import LoraSettings


def _reader_train() -> TrainConfig:
    # 800 questions, one per forward (no padding on CPU). SmolLM2-135M on this 2-core CPU: 56 s/step
    # measured with 1 thread while other jobs held the cores (load ~6); ~12-18 s/step expected when free
    # (a LoRA step measured 1.5 s per 256-token example on an idle machine), so 100 steps take about 20-30 minutes.
    return TrainConfig(learning_rate=2e-4, max_steps=100, batch_size=8, micro_batch_size=1, log_every=10)


@dataclass
class ReaderConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "alias, local dir or hub id"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1 ..."})
    data: str = field(default="squad", metadata={"help": "SQuAD file, short name in the data dir, or hub id"})
    data_dir: str | None = field(default=None, metadata={"help": "default: $COMPRESSIONS_DATA_DIR"})
    train_articles: int = field(default=20, metadata={"help": "local files: the first N articles are train"})
    limit: int | None = field(default=None, metadata={"help": "first N train questions (default: all)"})
    documents: int | None = field(
        default=None,
        metadata={"help": "train on consecutive paragraphs packed into documents of at most N tokens (512: the seeds' lengths)"},
    )
    on_error: str = field(default="skip", metadata={"help": "malformed records: skip | raise"})
    prompt: SquadPromptConfig = field(
        default_factory=lambda: SquadPromptConfig(shots=0),
        metadata={"help": "the harness's format without solved examples; the harness reads with this prompt"},
    )
    lora: LoraSettings = field(
        # attention projections only, light dropout: the reader learns an answer format, not new knowledge
        default_factory=lambda: LoraSettings(dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    )
    train: TrainConfig = field(default_factory=_reader_train)
    out: str = field(default="runs/reader", metadata={"help": "run folder; pass it to the harness as reader="})

    def validate(self) -> None:
        self.prompt.validate()
        check_placement(self.dtype, self.device)
        check_choice("on_error", self.on_error, ON_ERROR)
        if self.prompt.shots:
            raise ConfigError("prompt.shots must be 0 for reader training (the reader learns the format itself)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.documents is not None and self.documents < 1:
            raise ConfigError(f"documents must be >= 1, got {self.documents}")
        self.lora.validate()
        self.train.validate()
