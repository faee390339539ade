"""Compress once, answer many: per document length (512 to 4K tokens), the time to answer a question from the
full document against compressing the document once and answering each question from what was kept.

Documents are consecutive paragraphs of one validation article packed to at most the length
(`data/documents.py`), the longest `--n` of each length. For each: the full document's answer time per
question (prefill of the prompt with the whole document + exactly --new-tokens greedy tokens); for each
method at --budget M, its compression time (once per document for a question-agnostic method, once per
question for a question-aware one), the answer time per question from what it kept, and the time per question
amortised over --questions questions of the document. The prompt has no solved examples. Everything goes
through the library API (`load_compressor`, `compress`, `generate_inputs` + `model.generate`).

    PYTHONPATH=src python benchmarks/documents.py --lengths 512,1024,2048,4096 --n 1
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from compressions import load_compressor
from compressions.benchmarks import common_parser, report, squad_validation
from compressions.data.documents import pack_documents
from compressions.data.prompts import SquadPromptConfig
from compressions.evaluation.efficiency import kv_bytes, median_seconds
from compressions.models import load_model

COLUMNS = (
    ("length", "document size", "{}"),
    ("method", "method", "{}"),
    ("question_aware", "reads the question", "{}"),
    ("document_tokens", "document tokens", "{:.0f}"),
    ("kv_mib", "context KV MiB", "{:.2f}"),
    ("compress_s", "compress s (each)", "{:.3f}"),
    ("answer_s", "answer s / question", "{:.3f}"),
    ("amortised_s", "s / question, amortised", "{:.3f}"),
    ("vs_full", "time / full", "{:.2f}"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(__doc__.splitlines()[0], n=1, out="runs/benchmarks/documents.json")
    parser.add_argument("--data-dir", default=None, help="default: $COMPRESSIONS_DATA_DIR")
    parser.add_argument("--lengths", default="512,1024,2048,4096", help="document sizes in tokens, comma-separated")
    parser.add_argument("--budget", type=int, default=32, help="M, context tokens or KV entries kept")
    parser.add_argument("--methods", default="prefix,streaming,kvzip,snapkv", help="methods at M, comma-separated")
    parser.add_argument("--questions", type=int, default=10, help="questions a compressed document answers (amortisation)")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens generated per answer")
    return parser


def main(args: argparse.Namespace) -> list[dict]:
    model, tokenizer = load_model(args.model, args.dtype, args.device)
    prompt = SquadPromptConfig(shots=0)
    compressors = {"full": load_compressor("full", model=model, tokenizer=tokenizer, prompt=prompt)}
    for name in args.methods.split(","):
        compressors[name] = load_compressor(name, budget=args.budget, model=model, tokenizer=tokenizer, prompt=prompt)
    examples, source = squad_validation(args.data_dir, 1000)
    rows = []
    for length in map(int, args.lengths.split(",")):
        documents = _longest(pack_documents(examples, tokenizer, length)[0], tokenizer, args.n)
        times: dict[str, dict[str, list[float]]] = {name: {"compress": [], "answer": [], "tokens": [], "kept": []} for name in compressors}
        for context, question in documents:
            for name, compressor in compressors.items():
                compressed = compressor.compress(context, question)
                got = times[name]
                got["compress"].append(median_seconds(lambda: compressor.compress(context, question), args.min_run_time))
                got["answer"].append(median_seconds(lambda: _answer(compressor, compressed, question, args.new_tokens), args.min_run_time))
                got["tokens"].append(len(tokenizer(context, add_special_tokens=False).input_ids))
                got["kept"].append(compressed.n_tokens)
        full_s = statistics.fmean(times["full"]["answer"])
        for name, got in times.items():
            aware = compressors[name].method.question_aware
            compress_s = statistics.fmean(got["compress"]) if name != "full" else 0.0
            answer_s = statistics.fmean(got["answer"])
            amortised = answer_s + compress_s / (1 if aware else args.questions)
            rows.append({
                "length": length, "method": name, "question_aware": aware, "document_tokens": statistics.fmean(got["tokens"]),
                "kv_mib": kv_bytes(model.config, model.dtype, round(statistics.fmean(got["kept"]))) / 2**20,
                "compress_s": compress_s, "answer_s": answer_s, "amortised_s": amortised, "vs_full": amortised / full_s,
            })  # fmt: skip
    facts = {
        "documents": f"the {args.n} longest of each size, packed from {source}",
        "amortised": f"answer time + compress time / {args.questions} questions (question-agnostic) or / 1 (question-aware)",
        "full": "compress s is 0: the whole document is read with every question",
        "timing": "torch.utils.benchmark median per call after one warm-up, wall time",
    }
    report(args.out, f"Documents: compress once, answer many (M = {args.budget}, {args.new_tokens} new tokens)", rows, COLUMNS, facts, args)
    return rows


def _longest(examples, tokenizer, n: int) -> list[tuple[str, str]]:
    """(document, its first question) for the n longest documents."""
    first: dict[str, str] = {}
    for example in examples:
        first.setdefault(example.context, example.question)
    longest = sorted(first, key=lambda d: -len(tokenizer(d, add_special_tokens=False).input_ids))[:n]
    return [(document, first[document]) for document in longest]


@torch.no_grad()
def _answer(compressor, compressed, question: str, new_tokens: int) -> torch.Tensor:
    """Exactly `new_tokens` greedy tokens after reading `compressed` (through `model.generate`)."""
    inputs = compressor.generate_inputs(compressed, question)
    with compressor.method.reading():
        return compressor.model.generate(
            **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=compressor.tokenizer.pad_token_id
        )  # fmt: skip


if __name__ == "__main__":
    main(build_parser().parse_args(sys.argv[1:]))
