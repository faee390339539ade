"""The training objective: the weighted sum of losses.py's terms on one batch, plus diagnostics.

Scheduled sampling here is the two-pass parallel variant (inspired by Duckworth et al. 2019,
"Parallel Scheduled Sampling"): a no-grad teacher-forced pass gives the greedy predictions, a
rising share of answer inputs is replaced by them, and the graded pass reads the mixed answer.
"""

from __future__ import annotations

import torch
from torch import nn

from compressions.compressors import losses
from compressions.compressors.losses import LossConfig


class CompressorObjective:
    """`loss_fn(module, batch) -> (loss, logs)` for training.loop.train; `set_step` drives the schedule."""

    def __init__(self, config: LossConfig, max_steps: int, seed: int = 0):
        config.validate()
        self.config, self.max_steps = config, max_steps
        self.share = 0.0
        self.generator = torch.Generator().manual_seed(seed)

    def set_step(self, step: int, row: dict | None = None) -> None:
        self.share = losses.sampling_share(step, self.max_steps, self.config.scheduled_sampling)

    # Checkpointed by training.loop.train, so a resumed run mixes the same answer tokens.
    def state_dict(self) -> dict:
        return {"share": self.share, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.share = state["share"]
        self.generator.set_state(state["generator"])

    def __call__(self, module: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        c, labels = self.config, batch["labels"]
        pipeline = getattr(module, "module", module)  # unwrapped (DDP) for the no-grad passes
        input_ids = batch["input_ids"]
        if self.share > 0:
            with torch.no_grad():
                predictions = pipeline(batch)["logits"].argmax(-1)  # (B, A)
            input_ids = losses.mix_answer_inputs(input_ids, labels, predictions, self.share, self.generator)
        out = module(batch, input_ids=input_ids)
        soft, logits = out["soft"], out["logits"]
        terms = {"answer_ce": losses.answer_ce(logits, labels)}
        if c.first_token_ce:
            terms["first_token_ce"] = losses.first_token_ce(logits, labels)
        if c.distillation:
            if "context_index" in batch and not pipeline.config.use_lora:  # each context read once for its questions
                teacher = pipeline.context_teacher_logits(batch)
            else:
                teacher = pipeline.teacher_logits(batch["teacher_ids"], batch["teacher_mask"], labels.shape[1])
            terms["distillation"] = losses.distillation_kl(logits, teacher, labels, c.distillation_temperature)
        if c.contrastive:
            keys = out["context_summary"].detach()
            terms["contrastive"] = losses.info_nce(soft.mean(1), keys, batch["same_context"], c.contrastive_temperature)
        if c.anti_collapse:
            terms["anti_collapse"] = losses.anti_collapse(soft)
        if c.reconstruction:
            terms["reconstruction"] = pipeline.reconstruction_ce(
                out["entries"], batch["context_ids"], batch["context_mask"], c.reconstruction_windows, self.generator
            )
        loss = sum(getattr(c, name) * value for name, value in terms.items())
        logs = {name: value.item() for name, value in terms.items()}
        logs.update(soft_token_diagnostics(soft.detach()))
        logs["first_token_accuracy"] = losses.first_token_accuracy(logits.detach(), labels)
        logs["sampling_share"] = self.share
        return loss, logs


def soft_token_diagnostics(soft: torch.Tensor) -> dict[str, float]:
    """Collapse diagnostics: mean pairwise cosine of the M tokens within and across examples, and the
    tokens' mean L2 norm (to set against the LLM's mean embedding norm)."""
    return {
        "cosine_within": losses.cosine_within(soft).mean().item(),
        "cosine_across": losses.cosine_across(soft).item(),
        "soft_norm": soft.norm(dim=-1).mean().item(),
    }
