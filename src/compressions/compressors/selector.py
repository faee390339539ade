"""`selector`: a learned, question-agnostic KV selection. A linear probe on the reader's hidden states scores
every context token by how likely it is to be (part of) an answer; each layer and KV head keeps the KV entries
of the M best-scored tokens, and every question of the document is answered from them.

Inspired by KV-Distill (Chari et al., 2025), whose question-independent selection is learned, and by the
answer-candidate extractors of question generation: the probe is trained on the training documents' answer
spans (a token is positive when it overlaps the answer of any question asked about its document), by logistic
regression on standardised hidden states of a few layers, read in the same forward that fills the cache.
Differences from KV-Distill: no adapted K/V (the kept entries are the reader's own), one score per token shared
by all layers and heads, and the target is the answers rather than the teacher's distribution.

Why answers and not attention: on the 512-token validation documents at M = 32, an oracle keeping the entries
that all of a document's questions attend to most (their snapkv votes, summed) scores no better than prefix
truncation, while one keeping the tokens of the document's answers nearly reaches the full context
(docs/learned.md). A kept answer token's K/V still carry enough of its sentence for the question to find it.

Saved folder (`train selector`): `selector.safetensors` (the probe: mean, std, weight, bias) and
`selector_config.json` (the training config and what training saw).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.config import check_choice
from compressions.data.documents import pack_documents
from compressions.data.prompts import SquadPrompt, SquadPromptConfig, solved_examples
from compressions.data.squad import SquadExample, load_squad
from compressions.errors import CompressionsError, ConfigError
from compressions.methods.base import Target
from compressions.methods.kv_cache import ContextRead, KVCompressor
from compressions.models import DEFAULT_MODEL, load_model
from compressions.models.generation import copy_cache
from compressions.models.loading import check_placement
from compressions.progress import tqdm
from compressions.store.run_folder import RunFolder
from compressions.store.saved import read_saved

log = logging.getLogger(__name__)
WEIGHTS, CONFIG = "selector.safetensors", "selector_config.json"
# `quick` is every train document (344 at 512 tokens: ~5 min on 2 CPU cores); `test` a check in seconds
PRESETS = {"test": ["limit_documents=4", "steps=20"], "quick": []}


@dataclass
class SelectorConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "the LLM whose hidden states the probe reads (the reader)"})
    layers: list[int] = field(default_factory=lambda: [6, 12, 18, 24, 30], metadata={"help": "hidden states read (0: embeddings)"})
    documents: int = field(default=512, metadata={"help": "train on the train articles' paragraphs packed to this many tokens"})
    data: str = "squad"
    data_dir: str | None = None
    train_articles: int = 20
    on_error: str = "skip"
    limit_documents: int | None = field(default=None, metadata={"help": "train on the first N documents only"})
    steps: int = field(default=300, metadata={"help": "full-batch Adam steps of the logistic regression"})
    learning_rate: float = 1e-2
    l2: float = field(default=1e-3, metadata={"help": "weight of the squared norm of the probe's weights"})
    prompt: SquadPromptConfig = field(default_factory=SquadPromptConfig)  # the harness's: its prefix is read before the context
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    out: str = "runs/selector"

    def validate(self) -> None:
        self.prompt.validate()
        check_placement(self.dtype, self.device)
        check_choice("on_error", self.on_error, ("skip", "raise"))
        if not self.layers or min(self.layers) < 0:
            raise ConfigError(f"layers must be a non-empty list of hidden-state indices >= 0, got {self.layers}")
        if self.documents < 1 or self.steps < 1 or self.learning_rate <= 0 or self.l2 < 0:
            raise ConfigError("documents and steps must be >= 1, learning_rate > 0, l2 >= 0")
        if self.limit_documents is not None and self.limit_documents < 1:
            raise ConfigError(f"limit_documents must be >= 1, got {self.limit_documents}")


def answer_token_labels(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> torch.Tensor:
    """1.0 for each token whose characters [start, end) overlap an answer span [start, end), else 0.0."""
    return torch.tensor([float(any(a < t and b > s for s, t in spans)) for a, b in offsets])


def answer_spans(examples: list[SquadExample]) -> dict[str, list[tuple[int, int]]]:
    """Each context's answer spans [start, end) in characters, over every question asked about it."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for example in examples:
        spans.setdefault(example.context, []).extend((s, s + len(a)) for s, a in zip(example.answer_starts, example.answers))
    return spans


def stack_layers(hidden: tuple[torch.Tensor, ...], layers: list[int]) -> torch.Tensor:
    """(C, len(layers) * d): the chosen hidden states of one sequence (each (1, C, d)), side by side."""
    return torch.cat([hidden[layer][0] for layer in layers], dim=-1).float()


class Probe(torch.nn.Module):
    """A logistic-regression score on standardised features."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.weight = torch.nn.Parameter(torch.zeros_like(mean) if weight is None else weight)
        self.bias = torch.nn.Parameter(torch.zeros(1) if bias is None else bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.mean) / self.std) @ self.weight + self.bias


def shape_scores(scores: torch.Tensor, keep_first: int = 0, pool: int = 1) -> torch.Tensor:
    """The probe's per-token scores (C,) as the selection ranks them: with `pool` > 1 (odd), each token scores
    the best probe score within pool // 2 tokens of it (a likely answer keeps its neighbours; its own score
    breaks ties, so a peak goes first); the first `keep_first` tokens rank above every other token."""
    if pool > 1:
        pooled = F.max_pool1d(scores[None, None], pool, stride=1, padding=pool // 2)[0, 0]
        order = scores.argsort()
        order = order[pooled[order].argsort(stable=True)]  # by pooled score, ties by own score
        scores = torch.empty_like(scores)
        scores[order] = torch.arange(len(order), dtype=scores.dtype)  # the rank: higher is kept first
    if keep_first:
        scores = scores.clone()
        scores[:keep_first] = torch.finfo(scores.dtype).max
    return scores


class AnswerSelector(KVCompressor):
    name = "selector"
    reads_hidden = True

    def __init__(self, tokenizer: PreTrainedTokenizerBase, checkpoint: str, keep_first: int = 0, pool: int = 1, share_prefix: bool = True):
        super().__init__(tokenizer, share_prefix)
        if keep_first < 0 or pool < 1 or pool % 2 == 0:
            raise CompressionsError(f"selector: keep_first must be >= 0 and pool an odd number >= 1, got {keep_first} and {pool}")
        self.keep_first, self.pool = keep_first, pool
        folder = Path(checkpoint)
        if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
            raise CompressionsError(f"selector checkpoint {checkpoint}: no {WEIGHTS} and {CONFIG} there (made by `compressions train selector`)")
        self.settings = read_saved(folder / CONFIG)
        self.layers = self.settings["config"]["layers"]
        weights = read_saved(folder / WEIGHTS, "tensors")
        self.probe = Probe(weights["mean"], weights["std"], weights["weight"], weights["bias"]).eval()

    def select(self, keys: torch.Tensor, attention: torch.Tensor | None, read: ContextRead) -> torch.Tensor:
        features = stack_layers(read.hidden, self.layers)
        if features.shape[-1] != self.probe.mean.shape[0]:
            raise CompressionsError(
                f"selector trained on {self.settings['config']['model']} ({self.probe.mean.shape[0]} features) cannot read this model's hidden states"
            )
        scores = shape_scores(self.probe(features.to(self.probe.mean.device)), self.keep_first, self.pool)
        return scores.to(keys.device).expand(*keys.shape[:2], -1)


def document_features(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Target, context: str, layers: list[int]
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """One document's features as the selector reads them at use (after the prompt prefix's cache, at the
    same positions), with each token's character offsets."""
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    prefix_ids, _ = target.prompt.ids("")
    cache = copy_cache(model, target.prefix_cache(prefix_ids), 1)
    with torch.no_grad():
        out = KVCompressor._forward(model, cache, encoded.input_ids, len(prefix_ids), output_hidden_states=True)
    return stack_layers(out.hidden_states, layers), encoded.offset_mapping


def fit_probe(features: torch.Tensor, labels: torch.Tensor, steps: int, learning_rate: float, l2: float, progress: bool = False) -> tuple[Probe, float]:
    """Logistic regression by full-batch Adam on standardised features; (probe, final loss)."""
    mean, std = features.mean(0), features.std(0) + 1e-5
    standard = (features - mean) / std  # once: the probe's own standardisation would redo it every step
    weight, bias = torch.zeros_like(mean, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=learning_rate)
    for _ in tqdm(range(steps), desc="fit", unit="step", disable=not progress):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(standard @ weight + bias, labels) + l2 * weight.square().sum()
        loss.backward()
        optimizer.step()
    return Probe(mean, std, weight.detach(), bias.detach()).eval(), float(loss.detach())


def train_selector(config: SelectorConfig, examples: list[SquadExample] | None = None, progress: bool = True) -> dict:
    """Fit the probe on the train split's documents and save it in the run folder `config.out`; returns the
    training summary."""
    config.validate()
    torch.manual_seed(config.seed)
    with RunFolder(config.out) as run:
        run.save_config(config)
        start = time.perf_counter()
        model, tokenizer = load_model(config.model, config.dtype, config.device)
        if max(config.layers) > model.config.num_hidden_layers:
            raise ConfigError(f"layers: {max(config.layers)} > the model's {model.config.num_hidden_layers} layers")
        if examples is None:
            examples = load_squad(config.data, "train", config.data_dir, config.on_error, config.train_articles)
        # the harness picks the prompt's solved examples from the same train split
        target = Target(model, SquadPrompt(tokenizer, config.prompt, tuple(solved_examples(config.prompt.shots, examples))))
        packed, stats = pack_documents(examples, tokenizer, config.documents)
        spans = answer_spans(packed)
        contexts = list(spans)[: config.limit_documents]
        features, labels = [], []
        for context in tqdm(contexts, desc="features", unit="doc", disable=not progress):
            x, offsets = document_features(model, tokenizer, target, context, config.layers)
            features.append(x)
            labels.append(answer_token_labels(offsets, spans[context]))
        x, y = torch.cat(features), torch.cat(labels)
        read = time.perf_counter()
        probe, loss = fit_probe(x, y, config.steps, config.learning_rate, config.l2, progress)
        summary = {
            "documents": len(contexts), "tokens": len(y), "answer_token_rate": float(y.mean()), "final_loss": loss,
            "features_seconds": read - start, "fit_seconds": time.perf_counter() - read, "packing": stats.as_dict(),
        }  # fmt: skip
        save_file({name: t.detach().contiguous() for name, t in probe.state_dict().items()}, str(run.path / WEIGHTS))
        run.write_json(CONFIG, {"config": asdict(config), "summary": summary})
        run.write_json("training_summary.json", summary)
        log.info("selector: %d documents, %d tokens (%.1f%% in answers), loss %.3f", len(contexts), len(y), 100 * y.mean(), loss)
    return summary
