"""`compressions diagnose answers`: reference answer lengths and the max_new_tokens that covers them."""

from __future__ import annotations

import argparse


def run_diagnose_answers(args: argparse.Namespace) -> None:
    from compressions.data.prompts import SquadPrompt
    from compressions.data.squad import load_squad
    from compressions.evaluation.answer_lengths import answer_token_lengths, length_report
    from compressions.models.loading import load_tokenizer

    examples = load_squad(args.data, args.split, args.data_dir)
    tokenizer = load_tokenizer(args.model)
    report = length_report(answer_token_lengths((e.answers for e in examples), SquadPrompt(tokenizer)), args.threshold)
    print(f"reference answer lengths in {args.model} tokens ({args.data}, split {args.split}, longest reference per question)")
    for key, value in report.items():
        print(f"  {key:>28}: {value:.3g}" if isinstance(value, float) else f"  {key:>28}: {value}")


def register(groups: dict) -> None:
    answers = groups["diagnose"].add_parser("answers", help="reference answer lengths and recommended max_new_tokens")
    answers.add_argument("--data", default="squad")
    answers.add_argument("--data-dir")
    answers.add_argument("--split", default="train", choices=["train", "validation", "all"])
    answers.add_argument("--model", default="smollm2-135m")
    answers.add_argument("--threshold", type=int, default=12, help="report the share of answers longer than this")
    answers.set_defaults(func=run_diagnose_answers)
