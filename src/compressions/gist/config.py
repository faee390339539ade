"""GistConfig: what `compressions gist train` runs (model, condition, K, training mode, data, optimiser).

Sizing `validate` (2,000 examples, 1 epoch, batches of 8 = 250 steps), measured 2026-11-21 on this
machine's 2 cores, SmolLM2-135M fp32, full fine-tune, the first 2,000 Alpaca+ train examples (mean 83
tokens, p95 186, max_length 256): 84.5 s/step at micro-batch 8 and 165 s/step at 2 x 4, both while
other jobs held the load average at 5-6 (a third of the CPU for this run). Random batches of 8 pad to
~1,385 tokens (2.1x the 664 real ones). The uncontended figure measured on this machine (16.6 s for 8 x 256 = 2,048
tokens) scales to ~11 s/step here: ~45 min for a validate run on a quiet machine, hours on a loaded one.
Grouping by length (`group_by_length`, the default) brings a step to ~681 tokens (measured on the same
2,000 examples with transformers' LengthGroupedSampler), about half of that: ~25 min expected when quiet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compressions.config import check_choice
from compressions.errors import ConfigError
from compressions.gist.data import FORMATS
from compressions.gist.masks import CONDITIONS
from compressions.models import DEFAULT_MODEL
from compressions.models.loading import check_placement
from compressions.training.config import TrainConfig
from compressions.training.lora import LoraSettings

MODES = ("full", "lora", "frozen")
NUM_GIST = (1, 2, 5, 10)
# Training examples per preset (the seeds' quickstart sizes); None = the whole file.
PRESETS = {"test": 100, "validate": 2000, "full": None}


@dataclass
class GistConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "base model: alias, local dir or hub id"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1 ..."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa (bool mask) | eager (float mask)"})
    condition: str = field(default="gist", metadata={"help": "gist | pos_control | neg_control"})
    num_gist: int = field(default=1, metadata={"help": "K, gist tokens after the instruction: 1, 2, 5 or 10"})
    mode: str = field(
        default="full",
        metadata={"help": "full (fine-tune everything, the paper's) | lora (peft adapters + gist row) | frozen (gist row only)"},
    )
    lora: LoraSettings = field(default_factory=LoraSettings)
    prompt_format: str = field(default="plain", metadata={"help": "plain (the paper's text) | chat (model's template)"})
    data: str = field(default="alpaca_plus_train", metadata={"help": "Alpaca-format file or short name"})
    data_dir: str | None = field(default=None, metadata={"help": "default: $COMPRESSIONS_DATA_DIR"})
    preset: str = field(default="test", metadata={"help": "test (100 examples) | validate (2,000) | full (all)"})
    limit: int | None = field(default=None, metadata={"help": "training examples; overrides the preset's number"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the examples; sets train.max_steps"})
    max_length: int = field(default=256, metadata={"help": "tokens per sequence; longer ones are cut on the right"})
    group_by_length: bool = field(default=True, metadata={"help": "micro-batches of similar lengths (half the padding)"})
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(learning_rate=1e-4, max_steps=1, batch_size=8, micro_batch_size=8, log_every=10),
        metadata={"help": "optimiser settings; max_steps is set from examples x epochs / batch_size"},
    )
    out: str | None = field(default=None, metadata={"help": "run folder (default runs/gist/<run_name>)"})

    def validate(self) -> None:
        choices = {"condition": (self.condition, CONDITIONS), "mode": (self.mode, MODES), "preset": (self.preset, tuple(PRESETS))}
        choices["prompt_format"] = (self.prompt_format, FORMATS)
        choices["num_gist"] = (self.num_gist, NUM_GIST)
        for name, (value, allowed) in choices.items():
            check_choice(name, value, allowed)
        check_placement(self.dtype, self.device)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.epochs <= 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if self.max_length < 16:
            raise ConfigError(f"max_length must be >= 16, got {self.max_length}")
        self.train.validate()

    @property
    def n_examples(self) -> int | None:
        return self.limit if self.limit is not None else PRESETS[self.preset]

    @property
    def run_name(self) -> str:
        return f"{self.condition}-k{self.num_gist}-{self.mode}-{self.preset}"
