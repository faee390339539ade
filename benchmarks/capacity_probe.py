"""Capacity probe: how much of a paragraph can M soft tokens carry to this decoder, with no compressor?

For each of the first --paragraphs validation paragraphs, M free vectors are optimised directly (Adam) on a
question-agnostic objective: with the vectors in the prompt's context slot, the decoder regenerates the
paragraph after the slot (teacher-forced cross-entropy on its tokens; the "cramming" setting of Kuratov et
al. 2025, placed where the answer prompt reads them). They start as the embeddings of the paragraph's first
M tokens, so step 0 is prefix truncation. The vectors then answer every question on that paragraph, beside
prefix truncation and the full context read by the same decoder and prompt. It bounds what a learned
compressor could reach at M with this decoder, and shows the norms such vectors take.

    PYTHONPATH=src python benchmarks/capacity_probe.py --reader runs/reader --n 8 --budget 32
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from compressions.benchmarks import common_parser, report, squad_validation
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.evaluation.reading import first_line
from compressions.evaluation.squad_metrics import aggregate_squad, squad_scores
from compressions.models import load_model
from compressions.models.generation import generate_greedy
from compressions.reader.adapter import reader_prompt, with_reader

COLUMNS = (
    ("context", "slot holds", "{}"),
    ("f1", "F1", "{:.1f}"),
    ("exact_match", "EM", "{:.1f}"),
    ("reconstruction_accuracy", "paragraph tokens regenerated %", "{:.1f}"),
    ("soft_norm", "mean vector norm", "{:.2f}"),
)


def reconstruction(model, head: list[int], soft: torch.Tensor, target: list[int]) -> tuple[torch.Tensor, float]:
    """(CE of the paragraph after `head + soft`, share of its tokens the decoder predicts exactly)."""
    embed = model.get_input_embeddings()
    ids = torch.tensor(target)
    inputs = torch.cat([embed(torch.tensor(head)), soft, embed(ids)])[None]  # (1, H + M + N, d)
    logits = model(inputs_embeds=inputs).logits[0, len(head) + len(soft) - 1 : -1]  # predicts each paragraph token
    return F.cross_entropy(logits, ids), (logits.argmax(-1) == ids).float().mean().item() * 100


def cram(model, head: list[int], target: list[int], start: torch.Tensor, steps: int, lr: float) -> tuple[torch.Tensor, float]:
    soft = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([soft], lr=lr)
    for _ in range(steps):
        loss, _ = reconstruction(model, head, soft, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return soft.detach(), reconstruction(model, head, soft, target)[1]


def build_parser():
    parser = common_parser(__doc__.split("\n")[0] + " (--n: validation paragraphs probed)", 8, "runs/benchmarks/capacity_probe.json")
    parser.add_argument("--reader", default=None, help="SQuAD reader adapter folder: the decoder (merged)")
    parser.add_argument("--data-dir", default=None, help="default: $COMPRESSIONS_DATA_DIR")
    parser.add_argument("--budget", type=int, default=32, help="M, vectors per paragraph")
    parser.add_argument("--steps", type=int, default=150, help="Adam steps per paragraph")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--max-new-tokens", type=int, default=25)
    return parser


def main(args) -> list[dict]:
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model, args.dtype, args.device)
    model = with_reader(model, args.reader).eval().requires_grad_(False)
    prompt = SquadPromptConfig(**reader_prompt(args.reader)) if args.reader else SquadPromptConfig(shots=0)
    examples, source = squad_validation(args.data_dir, 30 * args.n)  # SQuAD has at most ~15 questions a paragraph
    contexts = list(dict.fromkeys(e.context for e in examples))[: args.n]
    questions = [e for e in examples if e.context in contexts]
    m = args.budget

    prompts = {"full context": [], f"prefix (first {m} tokens)": [], f"{m} crammed vectors": []}
    soft_slots, accuracy, norms = [], {k: [] for k in prompts}, {k: [] for k in prompts}
    vectors, start_time = {}, time.perf_counter()
    layout = SquadPrompt(tokenizer, prompt)
    head = layout.ids("?")[0]  # instruction + "Context:\n"
    for context in tqdm(contexts, desc="cram", unit="paragraph"):
        ids = tokenizer(context, add_special_tokens=False).input_ids
        start = model.get_input_embeddings()(torch.tensor(ids[:m])).detach()
        vectors[context], crammed = cram(model, head, ids, start, args.steps, args.lr)
        with torch.no_grad():
            accuracy[f"prefix (first {m} tokens)"].append(reconstruction(model, head, start, ids)[1])
        accuracy[f"{m} crammed vectors"].append(crammed)
        norms[f"prefix (first {m} tokens)"].append(start.norm(dim=-1).mean().item())
        norms[f"{m} crammed vectors"].append(vectors[context].norm(dim=-1).mean().item())
    cram_seconds = time.perf_counter() - start_time

    for e in questions:
        prefix, suffix = layout.ids(e.question)
        ids = tokenizer(e.context, add_special_tokens=False).input_ids
        prompts["full context"].append(prefix + ids + suffix)
        prompts[f"prefix (first {m} tokens)"].append(prefix + ids[:m] + suffix)
        prompts[f"{m} crammed vectors"].append(prefix + [tokenizer.pad_token_id] * m + suffix)
        soft_slots.append((len(prefix), vectors[e.context]))
    rows = []
    for name, batch in prompts.items():
        soft = soft_slots if name.endswith("vectors") else None
        generated = generate_greedy(model, tokenizer, batch, args.max_new_tokens, progress=False, soft=soft)
        predictions = [first_line(tokenizer.decode(g, skip_special_tokens=True)) for g in generated]
        scores = aggregate_squad([squad_scores(p, e.answers) for p, e in zip(predictions, questions)])
        rows.append({
            "context": name,
            **scores,
            "reconstruction_accuracy": statistics.fmean(accuracy[name]) if accuracy[name] else None,
            "soft_norm": statistics.fmean(norms[name]) if norms[name] else None,
        })  # fmt: skip
    facts = {
        "decoder": f"{args.model}" + (f" + reader {args.reader} (merged)" if args.reader else ""),
        "paragraphs / questions": f"{len(contexts)} / {len(questions)} (the first paragraphs of {source})",
        "optimisation": f"{args.steps} Adam steps at lr {args.lr} per paragraph, {cram_seconds / len(contexts):.0f} s each",
        "mean embedding norm": f"{model.get_input_embeddings().weight.norm(dim=-1).mean().item():.2f}",
    }
    report(args.out, f"Capacity probe at M={m}", rows, COLUMNS, facts, args)
    return rows


if __name__ == "__main__":
    main(build_parser().parse_args())
