"""The cost of a training run on paper: FLOPs per optimizer step counted, memory per GPU computed, hours per cell.

    python benchmarks/plan.py --model llama-3.1-8b            # the seed's 12-cell grid and the gist `full` preset
    python benchmarks/plan.py --model tiny-random-llama      # the same accounting on the tiny model (tests)

The model is built from its config on the meta device (shapes, no weights, no GPU; the 8B config is
configs/models/llama-3.1-8b.json). One micro-batch's forward and backward run there under
`torch.utils.flop_counter.FlopCounterMode` (eager attention, so the attention matmuls are counted too), and a
`saved_tensors_hooks` records what autograd keeps for the backward: the activation memory of that micro-batch
(parameters, and views of them, are not counted as activations). Nothing here is measured on a GPU.

Runs planned:
- gist training (`compressions gist train --preset full`: every example of the Alpaca+ train file, one epoch,
  8 examples per step, sequences of at most 256 tokens), full fine-tune under FSDP FULL_SHARD over the GPUs of
  configs/accelerate/fsdp_8b.yaml, and LoRA (the gist trainer's adapter: r=8 on all seven projections).
  Counted at the 256-token bound and at the mean length with group_by_length (85 tokens: 681 per step of 8
  at the `validate` size).
- one compressor cell (`compressions train compressor`, `validate` and `full` presets): the frozen LLM with an
  encoder LoRA (r=8 on q/k/v/o) reads the context; M soft tokens (a d x d head on the encoder's last hidden
  states, the size of selected_residual's correction) go to the frozen decoder with the prompt and the answer;
  a full-context teacher pass (no gradient) gives the distillation target. The four LLM-native archs run the
  same LLM passes; their heads differ by a few d x d matrices. The closing evaluation is not counted.

Memory per GPU, mixed precision bf16: a trained parameter costs 4 (fp32 weight) + 4 (fp32 gradient) + 8 (AdamW
moments) bytes, divided by the shard count under FSDP, plus two gathered bf16 decoder layers (the one computing
and the one prefetched); a frozen parameter costs 2 bytes (bf16), unsharded; activations are one micro-batch's.
Hours = FLOPs of all steps / (GPUs x peak x utilisation).
"""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parents[1]
MODELS = {"llama-3.1-8b": REPO / "configs" / "models" / "llama-3.1-8b.json"}
FSDP_CONFIG = REPO / "configs" / "accelerate" / "fsdp_8b.yaml"
GIST_EXAMPLES = 51_002  # the Alpaca part of Alpaca+ train (alpaca_plus_train_alpaca.json.gz): the `full` preset
GIB = 2**30


def model_config(name: str) -> LlamaConfig:
    if name == "tiny-random-llama":
        from compressions.models.tiny import build_tiny_llama, build_tiny_tokenizer

        return build_tiny_llama(build_tiny_tokenizer()).config
    values = {k: v for k, v in json.loads(MODELS[name].read_text()).items() if not k.startswith("_")}
    return LlamaConfig(**values)


def meta_model(config: LlamaConfig, lora_targets: list[str] | None = None, lora_r: int = 8) -> torch.nn.Module:
    """The model on the meta device in bf16, eager attention; with `lora_targets`, a peft LoRA on them (base frozen)."""
    with torch.device("meta"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.config._attn_implementation = "eager"
    if lora_targets:
        from compressions.training.lora import LoraSettings, add_adapter

        with torch.device("meta"):
            model = add_adapter(model, LoraSettings(r=lora_r, alpha=2 * lora_r, target_modules=lora_targets).peft_config())
        model.to(torch.bfloat16)  # peft makes fp32 adapters; under autocast their matmuls (and saved inputs) are bf16
    return model


@contextmanager
def counting(model: torch.nn.Module):
    """Count FLOPs and the bytes autograd saves for the backward (activations; parameters excluded)."""
    params = {id(p) for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        base = t._base if t._base is not None else t
        if id(t) not in params and id(base) not in params:
            saved[id(base)] = max(saved.get(id(base), 0), base.numel() * base.element_size())
        return t

    result: dict[str, int] = {}
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
    result["flops"] = counter.get_total_flops()
    result["activation_bytes"] = sum(saved.values())


def lm_step(model, batch: int, seq: int) -> dict:
    """One micro-batch of next-token training (the gist trainer's loss): forward and backward."""
    ids = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    with counting(model) as counted:
        model(input_ids=ids, labels=ids).loss.backward()
    return counted


def compressor_step(model, head: torch.nn.Module, batch: int, context: int, prompt: int, answer: int, budget: int) -> dict:
    """One micro-batch of a compressor cell: encoder (LLM + LoRA) over the context, M soft tokens through a d x d
    head, the frozen decoder over soft tokens + prompt + answer, a no-grad full-context teacher, CE + KL."""
    ctx = torch.zeros(batch, context, dtype=torch.long, device="meta")
    tail = torch.zeros(batch, prompt + answer, dtype=torch.long, device="meta")
    embed = model.get_input_embeddings()
    with counting(model) as counted:
        hidden = model(input_ids=ctx, output_hidden_states=True).hidden_states[-1]  # (B, Tc, d), adapter on
        soft = head(hidden[:, :budget])  # (B, M, d)
        with model.disable_adapter():
            logits = model(inputs_embeds=torch.cat([soft, embed(tail)], 1)).logits[:, -answer:]  # (B, A, V)
            with torch.no_grad():
                teacher = model(input_ids=torch.cat([ctx, tail], 1)).logits[:, -answer:]  # (B, A, V)
        ce = F.cross_entropy(logits.float().flatten(0, 1), tail[:, -answer:].flatten())
        kl = F.kl_div(logits.float().log_softmax(-1), teacher.float().log_softmax(-1), log_target=True, reduction="batchmean")
        (ce + kl).backward()
    return counted


def parameter_counts(model: torch.nn.Module) -> tuple[int, int, int]:
    """(all, trainable, one decoder layer's) parameters."""
    layer = next(m for m in model.modules() if type(m).__name__ == "LlamaDecoderLayer")
    return (
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
        sum(p.numel() for p in layer.parameters()),
    )


def memory_gib(total: int, trainable: int, layer: int, activations: int, shards: int, sharded: bool) -> dict:
    frozen = total - trainable
    if sharded:  # FSDP FULL_SHARD: fp32 weights, gradients and moments split; two bf16 layers gathered
        states = 16 * trainable / shards + 2 * frozen / shards + 2 * 2 * layer
    else:
        states = 16 * trainable + 2 * frozen
    return {"states_gib": states / GIB, "activations_gib": activations / GIB, "total_gib": (states + activations) / GIB}


def hours(flops_per_step: float, steps: int, gpus: int, peak: float, utilisation: float) -> float:
    return flops_per_step * steps / (gpus * peak * utilisation) / 3600


def fsdp_shards(path: Path = FSDP_CONFIG) -> int:
    return int(yaml.safe_load(path.read_text())["num_processes"])


def plan_gist(config: LlamaConfig, args) -> list[dict]:
    """Gist training at the `full` preset: full fine-tune (FSDP over args.gpus) and LoRA (one GPU per process)."""
    steps = args.gist_examples // args.gist_batch
    rows = []
    for mode in ("full", "lora"):
        model = meta_model(config, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] if mode == "lora" else None)
        total, trainable, layer = parameter_counts(model)
        gpus = args.gpus
        micro = max(1, args.gist_batch // gpus)  # the global batch of 8 split over the processes, no accumulation
        for seq in (args.gist_seq, args.gist_mean_seq):
            counted = lm_step(model, micro, seq)
            per_step = counted["flops"] * args.gist_batch / micro
            memory = memory_gib(total, trainable, layer, counted["activation_bytes"], gpus, sharded=mode == "full")
            rows.append({
                "run": f"gist {mode} ({'FSDP' if mode == 'full' else 'DDP'})", "tokens": seq, "gpus": gpus, "micro_batch": micro,
                "steps": steps, "trainable": trainable, "tflops_per_step": per_step / 1e12, **memory,
                "hours": hours(per_step, steps, gpus, args.peak_tflops * 1e12, args.utilisation),
            })  # fmt: skip
    return rows


COMPRESSOR_PRESETS = {"validate": (100, 8, 4), "full": (2000, 16, 8)}  # steps, batch, micro-batch (compressors/train.py)


def plan_compressor(config: LlamaConfig, args) -> list[dict]:
    """One compressor cell per budget and preset, one GPU per cell."""
    model = meta_model(config, ["q_proj", "k_proj", "v_proj", "o_proj"])
    with torch.device("meta"):
        head = torch.nn.Linear(config.hidden_size, config.hidden_size, bias=False).to(torch.bfloat16)
    total, trainable, _ = parameter_counts(model)
    total, trainable = total + head.weight.numel(), trainable + head.weight.numel()
    rows = []
    for preset in args.presets:
        steps, batch, micro = COMPRESSOR_PRESETS[preset]
        for budget in args.budgets:
            counted = compressor_step(model, head, micro, args.context, args.prompt, args.answer, budget)
            per_step = counted["flops"] * batch / micro
            memory = memory_gib(total, trainable, 0, counted["activation_bytes"], 1, sharded=False)
            rows.append({
                "run": f"compressor {preset}", "budget": budget, "gpus": 1, "micro_batch": micro, "steps": steps,
                "trainable": trainable, "tflops_per_step": per_step / 1e12, **memory,
                "hours": hours(per_step, steps, 1, args.peak_tflops * 1e12, args.utilisation),
            })  # fmt: skip
    return rows


def table(rows: list[dict], first: str) -> str:
    columns = [(first, first), ("gpus", "GPUs"), ("micro_batch", "micro-batch/GPU"), ("steps", "steps"), ("trainable", "trained params"),
               ("tflops_per_step", "TFLOP/step"), ("states_gib", "weights+grads+Adam GiB/GPU"), ("activations_gib", "activations GiB/GPU"),
               ("total_gib", "total GiB/GPU"), ("hours", "hours")]  # fmt: skip
    fmt = {"trainable": "{:,}", "tflops_per_step": "{:.1f}", "states_gib": "{:.1f}", "activations_gib": "{:.1f}", "total_gib": "{:.1f}", "hours": "{:.3g}"}
    lines = ["| run | " + " | ".join(title for _, title in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['run']} | " + " | ".join(fmt.get(key, "{}").format(row[key]) for key, _ in columns) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-8b", choices=[*MODELS, "tiny-random-llama"])
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of a gist run (FSDP shards); default: num_processes of fsdp_8b.yaml")
    parser.add_argument("--gpu", default="H100 SXM", help="the GPU the hours are for (a label)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="its dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--utilisation", type=float, default=0.4, help="the share of the peak assumed reached (MFU)")
    parser.add_argument("--gist-examples", type=int, default=GIST_EXAMPLES, help="examples in one epoch of the gist `full` preset")
    parser.add_argument("--gist-batch", type=int, default=8, help="gist train.batch_size (global)")
    parser.add_argument("--gist-seq", type=int, default=256, help="gist max_length: the padded bound")
    parser.add_argument("--gist-mean-seq", type=int, default=85, help="mean tokens per example with group_by_length")
    parser.add_argument("--budgets", type=int, nargs="+", default=[32, 64, 128], help="M of the grid's cells")
    parser.add_argument("--archs", type=int, default=4, help="archs per budget in the grid")
    parser.add_argument("--presets", nargs="+", default=["validate", "full"], choices=list(COMPRESSOR_PRESETS))
    parser.add_argument("--context", type=int, default=192, help="context tokens per question (dev-A mean ~191; cap 512)")
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens around the context slot (instruction, question, anchor)")
    parser.add_argument("--answer", type=int, default=8, help="answer tokens")
    parser.add_argument("--out", help="also write the rows as JSON here")
    return parser


def main(args: argparse.Namespace) -> dict:
    if args.gpus is None:
        args.gpus = fsdp_shards()
    config = model_config(args.model)
    gist, compressor = plan_gist(config, args), plan_compressor(config, args)
    grid = [{"preset": preset, "cells": args.archs * len(args.budgets),
             "gpu_hours": args.archs * sum(r["hours"] for r in compressor if r["run"] == f"compressor {preset}")}
            for preset in args.presets]  # fmt: skip
    facts = {
        "model": args.model, "parameters": parameter_counts(meta_model(config))[0], "gpu": args.gpu, "peak_tflops": args.peak_tflops,
        "utilisation": args.utilisation, "gist_gpus": args.gpus, "context": args.context, "prompt": args.prompt, "answer": args.answer,
    }  # fmt: skip
    print(f"{args.model}: {facts['parameters']:,} parameters; {args.gpu}, bf16 dense peak {args.peak_tflops:g} TFLOP/s at "
          f"{args.utilisation:.0%} utilisation; FLOPs counted on the meta device, no GPU run made\n")  # fmt: skip
    print(f"Gist `full` preset ({args.gist_examples:,} examples, 1 epoch, batch {args.gist_batch}), {args.gpus} GPUs:\n")
    gist_rows = [{**r, "tokens/example": r["tokens"]} for r in gist]
    print(table(gist_rows, "tokens/example") + "\n")
    print(f"Compressor cells (frozen LLM + encoder LoRA; {args.context} context + {args.prompt} prompt + {args.answer} answer tokens), one GPU per cell:\n")
    print(table([{**r, "M": r["budget"]} for r in compressor], "M") + "\n")
    for row in grid:
        wall = row["gpu_hours"] / args.gpus
        print(f"Seed grid, {args.archs} archs x {len(args.budgets)} budgets = {row['cells']} cells at `{row['preset']}`: "
              f"{row['gpu_hours']:.1f} GPU-hours, {wall:.1f} h on {args.gpus} GPUs (one cell per GPU)")  # fmt: skip
    result = {"facts": facts, "gist": gist, "compressor": compressor, "grid": grid}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(build_parser().parse_args())
