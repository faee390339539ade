"""Training losses and diagnostics for soft-token compressors, as pure functions of tensors.

Answer tensors are right-aligned: `logits` (B, A, V) and `labels` (B, A) with -100 where a row's
answer is shorter than A, so column j of every row holds the same kind of position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from compressions.errors import ConfigError

IGNORE = -100


@dataclass
class LossConfig:
    answer_ce: float = field(default=1.0, metadata={"help": "weight: teacher-forced answer cross-entropy"})
    first_token_ce: float = field(default=1.0, metadata={"help": "weight: extra cross-entropy on the first answer token"})
    distillation: float = field(default=1.0, metadata={"help": "weight: KL from the LLM reading the full text context"})
    distillation_temperature: float = field(default=1.0, metadata={"help": "softmax temperature of the KL"})
    contrastive: float = field(default=0.1, metadata={"help": "weight: InfoNCE, soft tokens vs their own context"})
    contrastive_temperature: float = field(default=0.1, metadata={"help": "InfoNCE temperature"})
    anti_collapse: float = field(default=0.1, metadata={"help": "weight: mean squared cosine between the M tokens"})
    scheduled_sampling: float = field(
        default=0.25, metadata={"help": "final share of answer inputs replaced by greedy predictions (linear ramp)"}
    )
    reconstruction: float = field(
        default=0.0, metadata={"help": "weight: per-window reconstruction of the context's tokens from the gists (gist_kv, layout spread)"}
    )
    reconstruction_windows: int = field(default=4, metadata={"help": "windows of each context reconstructed per step, drawn at random"})

    def validate(self) -> None:
        for name in ("answer_ce", "first_token_ce", "distillation", "contrastive", "anti_collapse", "reconstruction"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.distillation_temperature <= 0 or self.contrastive_temperature <= 0:
            raise ConfigError("loss.distillation_temperature and loss.contrastive_temperature must be > 0")
        if self.reconstruction_windows < 1:
            raise ConfigError(f"loss.reconstruction_windows must be >= 1, got {self.reconstruction_windows}")
        if not 0 <= self.scheduled_sampling <= 1:
            raise ConfigError(f"loss.scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")


def answer_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the real answer tokens."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


def first_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B,) column of each row's first answer token."""
    return (labels != IGNORE).int().argmax(dim=1)


def first_token_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(len(labels), device=labels.device)
    first = first_positions(labels)
    return F.cross_entropy(logits[rows, first], labels[rows, first])


def first_token_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    rows = torch.arange(len(labels), device=labels.device)
    first = first_positions(labels)
    return (logits[rows, first].argmax(-1) == labels[rows, first]).float().mean().item()


def distillation_kl(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher || student) per answer position, averaged over real answer tokens (x T^2, as Hinton et al.)."""
    log_p = F.log_softmax(teacher / temperature, dim=-1)
    log_q = F.log_softmax(student / temperature, dim=-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, A)
    real = labels != IGNORE
    return per_position[real].mean() * temperature**2


def info_nce(queries: torch.Tensor, keys: torch.Tensor, positives: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over the batch: query i should match the keys marked in positives[i] (B, B) and no other.

    Several positives per row (questions on the same paragraph share a context) count together.
    """
    sims = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T / temperature  # (B, B)
    log_probs = sims.log_softmax(dim=-1)
    return -(log_probs.masked_fill(~positives, float("-inf")).logsumexp(dim=-1)).mean()


def cosine_within(soft: torch.Tensor) -> torch.Tensor:
    """(B,) mean cosine between the M tokens of each example (off the diagonal); 1 = collapsed."""
    unit = F.normalize(soft, dim=-1)
    cos = unit @ unit.transpose(1, 2)  # (B, M, M)
    m = soft.shape[1]
    off = ~torch.eye(m, dtype=torch.bool, device=soft.device)
    return cos[:, off].mean(dim=1) if m > 1 else torch.zeros(len(soft), device=soft.device)


def cosine_across(soft: torch.Tensor) -> torch.Tensor:
    """Mean cosine between token m of example a and token m of example b != a; 1 = context ignored."""
    b = soft.shape[0]
    if b < 2:
        return torch.tensor(float("nan"))
    unit = F.normalize(soft, dim=-1).transpose(0, 1)  # (M, B, d)
    cos = unit @ unit.transpose(1, 2)  # (M, B, B)
    off = ~torch.eye(b, dtype=torch.bool, device=soft.device)
    return cos[:, off].mean()


def anti_collapse(soft: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between distinct soft tokens of an example: 0 when they are orthogonal."""
    unit = F.normalize(soft, dim=-1)
    cos = unit @ unit.transpose(1, 2)  # (B, M, M)
    off = ~torch.eye(soft.shape[1], dtype=torch.bool, device=soft.device)
    return cos[:, off].pow(2).mean() if soft.shape[1] > 1 else soft.new_zeros(())


def sampling_share(step: int, max_steps: int, final_share: float) -> float:
    """Scheduled sampling's share of model-predicted answer inputs: 0 at the start, `final_share` at the end."""
    return final_share * min(step / max(max_steps - 1, 1), 1.0)


def mix_answer_inputs(
    input_ids: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, share: float, generator: torch.Generator
) -> torch.Tensor:
    """Replace each answer input token by the model's greedy prediction of it with probability `share`.

    input_ids (B, T) end with the A right-aligned answer columns; predictions (B, A) are the argmax
    at the positions that predict them. Columns outside a row's answer are kept.
    """
    a = labels.shape[1]
    draw = torch.rand(labels.shape, generator=generator).to(labels.device) < share
    replace = draw & (labels != IGNORE)
    mixed = torch.where(replace, predictions, input_ids[:, -a:])  # (B, A)
    return torch.cat([input_ids[:, :-a], mixed], dim=1)
