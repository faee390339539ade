"""SQuAD: compress the context, then answer, per validation question, against answering from the full context:
FLOPs (compression included), time, and the KV bytes of the context the reader holds.

Answering is one prefill of the prompt (prefix + context or its replacement + question) plus exactly
--new-tokens greedy tokens, the same for every method. Methods: full, prefix, extractive (TF-IDF) and
perplexity (self-information under the reader LM) at --budget M tokens, the KV-cache methods (streaming,
knorm, snapkv, tova: M entries per layer and KV head of the reader's own cache, read after a prefill of the
whole context, which is their compression cost), and a learned soft compressor:
`--checkpoint DIR` (a trained one; its LLM, M and prompt are used) or an untrained `--arch` at M (its cost
does not depend on training). A KV method answers by reading the question after its kept entries.
Compression FLOPs are everything torch runs in `compress`: prefix and extractive run no torch op (a
tokenizer cut; scikit-learn TF-IDF), so they count 0 LLM FLOPs and only their compress time shows. The prompt has no solved examples (shots 0), so the context is what differs between methods.

    PYTHONPATH=src python benchmarks/squad_compressors.py --n 10
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys

import torch
from transformers import PreTrainedModel

from compressions.benchmarks import accumulate, common_parser, cost_facts, measure_call, report, squad_validation
from compressions.compressors import ARCHITECTURES
from compressions.compressors.method import LearnedContext
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.evaluation.efficiency import kv_bytes
from compressions.methods import Target, build_method, takes_budget
from compressions.models import load_model
from compressions.models.generation import kept_cache_inputs
from compressions.models.kept_cache import KeptCache
from compressions.models.soft_prompts import embed_with_slots, slot_mask

TEXT_METHODS = ("prefix", "extractive", "perplexity")  # besides full, always run
KV_METHODS = ("streaming", "knorm", "snapkv", "tova")
COLUMNS = (
    ("method", "method", "{}"),
    ("context_tokens", "context tokens", "{:.1f}"),
    ("context_kv_bytes", "context KV bytes", "{:,.0f}"),
    ("kv_vs_full", "KV / full", "{:.3f}"),
    ("compress_gflops", "compress GFLOPs", "{:.3f}"),
    ("compress_ms", "compress ms", "{:.2f}"),
    ("gflops", "total GFLOPs", "{:.3f}"),
    ("flops_vs_full", "FLOPs / full", "{:.3f}"),
    ("ms", "total ms", "{:.1f}"),
    ("time_vs_full", "time / full", "{:.3f}"),
    ("peak_mib", "peak MiB", "{:.1f}"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(__doc__.splitlines()[0], n=10, out="runs/benchmarks/squad_compressors.json")
    parser.add_argument("--data-dir", default=None, help="default: $COMPRESSIONS_DATA_DIR")
    parser.add_argument("--budget", type=int, default=32, help="M, context tokens kept (text) or soft tokens (learned)")
    parser.add_argument("--checkpoint", default=None, help="a trained compressor folder (`compressions train compressor`)")
    parser.add_argument("--arch", default="cross_attention", choices=sorted(ARCHITECTURES), help="untrained learned compressor")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens generated per answer")
    parser.add_argument("--methods", default=",".join(TEXT_METHODS + KV_METHODS), help="budgeted methods, comma-separated")
    return parser


@torch.no_grad()
def answer(
    model: PreTrainedModel,
    ids: list[int],
    soft: tuple[int, torch.Tensor] | None,
    new_tokens: int,
    pad_id: int,
    kv: KeptCache | None = None,
) -> torch.Tensor:
    """Exactly `new_tokens` greedy tokens after one prompt; `soft = (start, vectors)` fills its slot with vectors;
    `kv` holds the prompt up to the end of the slot (a KV method's kept cache), so only the rest is read."""
    input_ids = torch.tensor([ids], device=model.device)  # (1, T)
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if soft is not None:
        start, vectors = soft
        in_slot = slot_mask([len(ids)], [(start, len(vectors))], len(ids))
        inputs = {"inputs_embeds": embed_with_slots(model, input_ids, in_slot, vectors), "attention_mask": inputs["attention_mask"]}
    if kv is not None:  # a fresh cache per call: generate appends to the one it is given
        inputs = kept_cache_inputs(model, [kv], [ids], pad_id)
    return model.generate(
        **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id,
    )  # fmt: skip


def learned_method(args: argparse.Namespace) -> tuple[LearnedContext, PreTrainedModel, object, SquadPromptConfig, str]:
    """(learned method, reader LLM, tokenizer, prompt, what it is): a trained checkpoint, or an untrained --arch."""
    if args.checkpoint:
        method = LearnedContext.from_checkpoint(args.checkpoint, args.device)
        what = f"trained compressor {args.checkpoint}"
    else:
        model, tokenizer = load_model(args.model, args.dtype, args.device)
        torch.manual_seed(0)  # the untrained compressor's weights
        config = PipelineConfig(model=args.model, arch=args.arch, budget=args.budget)
        method = LearnedContext(SoftPromptModel.create(config, model, tokenizer))
        what = f"untrained {args.arch} (cost does not depend on training)"
    pipeline = method.pipeline
    return method, pipeline.llm, pipeline.tokenizer, dataclasses.replace(pipeline.config.prompt, shots=0), what


def main(args: argparse.Namespace) -> list[dict]:
    learned, model, tokenizer, prompt, what = learned_method(args)
    budget = learned.pipeline.config.budget
    names = ["full", *args.methods.split(",")]  # full first: the rows' ratios are to it
    layout = SquadPrompt(tokenizer, prompt)  # the KV methods read the prompt's prefix
    # each question alone: a KV method prefills the prompt prefix for each, as `answer` does for the others
    alone = {name: {"share_prefix": False} if name in KV_METHODS else {} for name in names}
    budgets = {name: budget if takes_budget(name) else None for name in names}
    methods = {name: build_method(name, tokenizer, budgets[name], target_model=model, **alone[name]) for name in names}
    target = Target(model, layout)
    methods[learned.name] = learned
    examples, source = squad_validation(args.data_dir, args.n)
    totals: dict[str, dict[str, float]] = {}
    kept = dict.fromkeys(methods, 0)
    for example in examples:
        start = len(layout.ids(example.question)[0])  # where the context slot begins
        for name, method in methods.items():
            compress = functools.partial(method.compress, example.context, example.question, budgets.get(name, budget), target)
            compressed = compress()
            ids = layout.with_context(example.question, compressed.token_ids)
            soft = None if compressed.embeddings is None else (start, compressed.embeddings)
            reply = functools.partial(answer, model, ids, soft, args.new_tokens, tokenizer.pad_token_id, compressed.kv)
            accumulate(totals, f"{name}:compress", measure_call(model, compress, args.min_run_time))
            accumulate(totals, f"{name}:answer", measure_call(model, reply, args.min_run_time))
            kept[name] += compressed.n_tokens
    rows = table_rows(totals, kept, len(examples), model)
    facts = {
        "model": f"{args.model if not args.checkpoint else 'the checkpoint LLM'}; learned: {what}",
        "data": f"{source}, first {len(examples)} questions", "budget M": budget,
        "answer": f"prefill + exactly {args.new_tokens} greedy tokens, batch 1",
        "context KV bytes": "2 x layers x KV heads x head_dim x bytes x context tokens (learned: M soft tokens + separator; "
        "KV methods: M entries per layer and KV head)",
        "compression": "prefix / extractive run no torch op: 0 LLM FLOPs, their compress ms shown; KV methods: the prefill "
        "of prompt prefix + context (+ the question for snapkv, + one token for tova)",
        **cost_facts(args.device),
    }  # fmt: skip
    title = f"SQuAD: compress + answer vs the full context (per question, {len(examples)} questions)"
    report(args.out, title, rows, COLUMNS, facts, args)
    return rows


def table_rows(totals: dict[str, dict[str, float]], kept: dict[str, int], n: int, model: PreTrainedModel) -> list[dict]:
    """Per-question means of compression + answer, with ratios to the full context."""
    rows = []
    for name, tokens in kept.items():
        compress, reply = totals[f"{name}:compress"], totals[f"{name}:answer"]
        rows.append({
            "method": name, "context_tokens": tokens / n, "context_kv_bytes": kv_bytes(model.config, model.dtype, tokens) / n,
            "compress_gflops": compress["gflops"] / n, "compress_ms": compress["ms"] / n,
            "gflops": (compress["gflops"] + reply["gflops"]) / n, "ms": (compress["ms"] + reply["ms"]) / n,
            "peak_mib": max(compress["peak_mib"], reply["peak_mib"]),
        })  # fmt: skip
    full = rows[0]
    for row in rows:
        row |= {"kv_vs_full": row["context_kv_bytes"] / full["context_kv_bytes"], "flops_vs_full": row["gflops"] / full["gflops"],
                "time_vs_full": row["ms"] / full["ms"]}  # fmt: skip
    return rows


if __name__ == "__main__":
    main(build_parser().parse_args(sys.argv[1:]))
