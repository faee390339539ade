"""ROUGE of gist models and their controls on Alpaca-format files (greedy, as the paper scored).

How each model reads a prompt:
- `gist` models: through gist caching: each distinct instruction is compressed once, and outputs are
  generated from the gists' KV alone (never from the masked full sequence).
- `neg_control` models: from the tail alone (input and `Output:`) at its original positions, which is
  exactly what their training mask let them see (`compress(..., keep="none")`).
- `pos_control` models: the full prompt, gists included (plain causal, as trained).
- a base model (no `gist_config.json`): the full prompt without a gist line.
metrics.json: `{model: {split: {rougeL, rouge1, rouge2, n, rouge_n, seconds_per_example, loss}}}` (ROUGE on the
first `rouge_n` of the n examples) plus, when the controls are given, `gist_retention: {split: (gist - neg) /
(pos - neg)}` on ROUGE-L and `loss_retention: {split: (neg - gist) / (neg - pos)}` on the loss, each with its
paired bootstrap interval (`..._ci95`).
`loss` is the teacher-forced NLL per reference token (output + EOS) read the way the model reads; gist
models also get `loss_gists_hidden`, the same model under the neg_control mask: the gap is what the gists
carry. scores.json keeps each example's ROUGE-L and summed NLL per model and split, so that runs scored
apart (a grid's cells) can be paired later (gist.dose).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.data.alpaca import AlpacaExample, load_alpaca
from compressions.errors import ConfigError
from compressions.evaluation.intervals import bootstrap_ci, retention_ci
from compressions.evaluation.rouge import aggregate_rouge, rouge_scores
from compressions.gist.cache import compress, generate
from compressions.gist.data import FORMATS, IGNORE, GistCollator, prompt_ids, training_example
from compressions.gist.masks import float_mask_dtype
from compressions.gist.tokens import gist_token_id
from compressions.models import load_model
from compressions.models.generation import generate_greedy, length_batches
from compressions.models.loading import check_placement
from compressions.store.run_folder import RunFolder
from compressions.store.saved import describe, gist_settings, model_dir, saved_kind

log = logging.getLogger(__name__)
SPLITS = ["alpaca_plus_validation_unseen", "alpaca_plus_validation_seen"]


@dataclass
class GistEvalConfig:
    gist: str | None = field(default=None, metadata={"help": "gist model: `gist train` run folder or its model dir"})
    pos_control: str | None = field(default=None, metadata={"help": "pos_control model (run folder or model dir)"})
    neg_control: str | None = field(default=None, metadata={"help": "neg_control model (run folder or model dir)"})
    base: str | None = field(default=None, metadata={"help": "untrained model, read with the full prompt (e.g. smollm2-135m)"})
    base_prompt_format: str = field(default="plain", metadata={"help": "plain | chat, for the base model"})
    splits: list[str] = field(default_factory=lambda: list(SPLITS), metadata={"help": "Alpaca-format files or short names"})
    data_dir: str | None = field(default=None, metadata={"help": "default: $COMPRESSIONS_DATA_DIR"})
    limit: int | None = field(default=None, metadata={"help": "first N examples of each split"})
    rouge_limit: int | None = field(
        default=None,
        metadata={"help": "generate (ROUGE) on the first N of those only; the loss still reads them all (CPU budgets)"},
    )
    max_new_tokens: int = field(default=128, metadata={"help": "generation stops at EOS or after this many tokens"})
    batch_size: int = 8
    dtype: str = "float32"
    device: str = "cpu"
    n_samples: int = field(default=10, metadata={"help": "predictions per model and split in sample_predictions.json"})
    rouge: bool = field(default=True, metadata={"help": "False: only the teacher-forced losses (no generation; minutes)"})
    wrong_instruction: bool = field(
        default=True, metadata={"help": "also score the gist model reading another example's instruction gists (a control)"}
    )
    int8_cache: bool = field(default=False, metadata={"help": "also score the gist model reading its cache stored as int8"})
    truncation: bool = field(
        default=True, metadata={"help": "also score pos_control reading the instruction cut to its first K tokens (K = its gists)"}
    )
    out: str = field(default="runs/gist/eval", metadata={"help": "run folder"})

    def validate(self) -> None:
        if not self.models:
            raise ConfigError("nothing to evaluate: give at least one of gist, pos_control, neg_control, base")
        if self.base_prompt_format not in FORMATS:
            raise ConfigError(f"base_prompt_format must be one of {FORMATS}, got {self.base_prompt_format!r}")
        for name in ("limit", "rouge_limit"):
            if (value := getattr(self, name)) is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be >= 1")
        check_placement(self.dtype, self.device)
        for role, path in self.models.items():  # a model in another role would be read, and labelled, as this one
            wanted = None if role == "base" else f"{role} model"
            if saved_kind(path) != wanted:
                raise ConfigError(f"--{role.replace('_', '-')} {path} is {describe(path)}; it takes a {wanted or 'base model'}")

    @property
    def models(self) -> dict[str, str]:
        given = {"gist": self.gist, "pos_control": self.pos_control, "neg_control": self.neg_control, "base": self.base}
        return {role: path for role, path in given.items() if path}


def predict(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[AlpacaExample],
    settings: dict | None,
    config: GistEvalConfig,
    progress: bool = True,
    wrong_instruction: bool = False,
    int8: bool = False,
) -> list[list[int]]:
    """Generated ids per example, the way `settings` (a gist_config.json, or None) says the model reads.
    `wrong_instruction` (a gist model): each input is read after the gists of the next distinct instruction
    among `examples` (a cyclic shift, so never its own; with `rouge_limit`, among the first N): if the gists
    carry the instruction, this must be worse.
    `int8`: the gist cache as it reads back from int8 storage."""
    if settings is None or settings["condition"] == "pos_control":  # the full prompt
        k, fmt = (settings["num_gist"], settings["prompt_format"]) if settings else (0, config.base_prompt_format)
        gist_id = gist_token_id(tokenizer) if k else None
        prompts = [prompt_ids(tokenizer, e, k, gist_id, fmt) for e in examples]
        return generate_greedy(
            model, tokenizer, prompts, config.max_new_tokens, config.batch_size, stop_at_newline=False, progress=progress
        )
    k, fmt = settings["num_gist"], settings["prompt_format"]
    row_of = {text: i for i, text in enumerate(dict.fromkeys(e.instruction for e in examples))}
    keep = "gist" if settings["condition"] == "gist" else "none"
    cache = compress(model, tokenizer, list(row_of), k, fmt, keep, config.batch_size, progress)
    cache = cache.int8() if int8 else cache
    shift = 1 if wrong_instruction else 0
    rows = cache.select([(row_of[e.instruction] + shift) % len(row_of) for e in examples])  # one compression per instruction
    inputs = [e.input for e in examples]
    return generate(model, tokenizer, rows, inputs, config.max_new_tokens, config.batch_size, progress=progress)


@torch.no_grad()
def completion_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[AlpacaExample],
    settings: dict | None,
    condition: str,
    config: GistEvalConfig,
) -> tuple[list[float], list[int]]:
    """Each example's summed NLL over its reference tokens, and their number, teacher-forced under
    `condition`'s mask (the training-time reading; the gist mask gives the logits gist caching gives, as the
    tests check). Sum over sum is the training loss of all the examples in one batch."""
    k, fmt = (settings["num_gist"], settings["prompt_format"]) if settings else (0, config.base_prompt_format)
    gist_id = gist_token_id(tokenizer) if k else -1  # -1: no gist tokens, so every mask is plain causal
    rows = [training_example(tokenizer, e, k, gist_id, fmt, max_length=10**6) for e in examples]
    collate = GistCollator(tokenizer.pad_token_id, gist_id, condition, float_mask_dtype(model))
    nll, tokens = [0.0] * len(rows), [0] * len(rows)
    for batch in length_batches([len(r["input_ids"]) for r in rows], config.batch_size):
        inputs = {key: value.to(model.device) for key, value in collate([rows[i] for i in batch]).items()}
        labels = inputs.pop("labels")[:, 1:]  # position t predicts token t + 1
        logits = model(**inputs).logits[:, :-1].float()
        per_token = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
        for row, i in enumerate(batch):
            nll[i], tokens[i] = per_token[row].sum().item(), int((labels[row] != IGNORE).sum())
    return nll, tokens


def model_name(role: str, settings: dict | None) -> str:
    return f"gist-{settings['num_gist']}" if role == "gist" and settings else role


def evaluate_gist(config: GistEvalConfig, progress: bool = True) -> dict:
    """Evaluate every given model on every split; writes metrics.json and sample_predictions.json."""
    config.validate()
    splits = {name: load_alpaca(name, config.data_dir)[: config.limit] for name in config.splits}
    metrics: dict = {}
    samples: list[dict] = []
    per_example: dict[str, dict[str, dict[str, list]]] = {}  # model -> split -> each example's scores (scores.json)
    with RunFolder(config.out) as run:
        run.save_config(config)
        for role, path in config.models.items():
            settings = gist_settings(path)
            name = model_name(role, settings)
            model, tokenizer = load_model(model_dir(path), config.dtype, config.device)
            metrics[name] = {}
            for split, examples in splits.items():
                condition = settings["condition"] if settings else "pos_control"
                row = metrics[name][split] = {"n": len(examples)}
                nll, tokens = completion_nll(model, tokenizer, examples, settings, condition, config)
                row["loss"] = sum(nll) / sum(tokens)
                per_example.setdefault(name, {})[split] = {"nll": nll, "tokens": tokens}
                if condition == "gist":
                    hidden, _ = completion_nll(model, tokenizer, examples, settings, "neg_control", config)
                    row["loss_gists_hidden"] = sum(hidden) / sum(tokens)
                if config.rouge:
                    scored = examples[: config.rouge_limit]  # generation is the cost; the loss above read them all
                    scores, predictions = _rouge(row, model, tokenizer, scored, settings, config, progress)
                    per_example[name][split]["rougeL"] = scores
                    samples += [
                        {"model": name, "split": split, "instruction": e.instruction, "input": e.input,
                         "reference": e.output, "prediction": p, "rougeL": 100 * s}
                        for e, p, s in list(zip(scored, predictions, scores))[: config.n_samples]
                    ]  # fmt: skip
                    if role == "pos_control" and settings and config.truncation:
                        k = settings["num_gist"]
                        cut = [replace(e, instruction=first_tokens(tokenizer, e.instruction, k)) for e in scored]
                        truncated = metrics.setdefault(f"instruction-first-{k}", {})[split] = {"n": len(scored)}
                        scores, _ = _rouge(truncated, model, tokenizer, cut, settings, config, progress)
                        per_example.setdefault(f"instruction-first-{k}", {})[split] = {"rougeL": scores}
                    variants = {
                        "wrong_instruction": config.wrong_instruction and len({e.instruction for e in scored}) > 1,
                        "int8": config.int8_cache,
                    }
                    for variant in [v for v, on in variants.items() if on and condition == "gist"]:
                        extra = metrics.setdefault(f"{name}-{variant}", {})[split] = {"n": len(scored)}
                        scores, _ = _rouge(extra, model, tokenizer, scored, settings, config, progress, **{variant: True})
                        per_example.setdefault(f"{name}-{variant}", {})[split] = {"rougeL": scores}
                log.info("%s on %s: %s (n=%d)", name, split, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, len(examples))
            del model
        metrics.update(retentions(per_example))
        run.write_json("scores.json", per_example)
        run.write_json("sample_predictions.json", samples)
        run.write_metrics(metrics)
    return metrics


def _rouge(row: dict, model, tokenizer, examples, settings, config, progress, **variant: bool):
    """Generate, and put ROUGE (with the ROUGE-L interval) and seconds per example in `row`; returns each
    example's ROUGE-L and the predictions."""
    start = time.perf_counter()
    generated = predict(model, tokenizer, examples, settings, config, progress, **variant)
    row["seconds_per_example"] = (time.perf_counter() - start) / len(examples)
    row["rouge_n"] = len(examples)
    predictions = [tokenizer.decode(g, skip_special_tokens=True).strip() for g in generated]
    scores = [rouge_scores(p, e.output) for p, e in zip(predictions, examples)]
    row.update(aggregate_rouge(scores))
    row["rougeL_ci95"] = [100 * x for x in bootstrap_ci([s["rougeL"] for s in scores])]
    return [s["rougeL"] for s in scores], predictions


def first_tokens(tokenizer: PreTrainedTokenizerBase, text: str, k: int) -> str:
    """The text of `text`'s first k tokens: truncation to the budget of k gists (the baseline gists must beat)."""
    return tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids[:k]).strip()


def gist_row(metrics: dict) -> str | None:
    """The gist model's name among the metrics (`gist-K`; its variant rows are `gist-K-<variant>`)."""
    return next((name for name in metrics if re.fullmatch(r"gist-\d+", name)), None)


def common_examples(scores: list[list[float]]) -> list[list[float]]:
    """Per-example score lists of one split cut to the examples they all scored. Every run scores the first N
    examples of the split in its order (`limit`, `rouge_limit`), so the first min(N) pair up one to one."""
    n = min(map(len, scores))
    return [s[:n] for s in scores]


def retentions(scores: dict[str, dict[str, dict[str, list]]]) -> dict:
    """Gist retention on ROUGE-L, (gist - neg) / (pos - neg), and on the loss, (neg - gist) / (neg - pos), per
    split, with paired bootstrap intervals, from each example's scores of the gist model and both controls
    (scores.json's layout), on the examples all three scored; {} when one of the three is missing. Reference
    tokens are the same for the three models, so the ratio of mean summed NLLs is the ratio of per-token losses."""
    gist = gist_row(scores)
    if gist is None or "pos_control" not in scores or "neg_control" not in scores:
        return {}
    out: dict = {}
    for split in scores[gist]:
        rows = [scores[m].get(split, {}) for m in (gist, "pos_control", "neg_control")]
        for key, name in (("rougeL", "gist_retention"), ("nll", "loss_retention")):
            if all(key in r for r in rows):
                g, p, n = common_examples([r[key] for r in rows])
                gap = sum(p) - sum(n)
                out.setdefault(name, {})[split] = (sum(g) - sum(n)) / gap if gap else None
                out.setdefault(f"{name}_ci95", {})[split] = retention_ci(g, p, n)
    return out
