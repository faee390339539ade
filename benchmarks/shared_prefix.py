"""Generation with a shared prompt head prefilled once, against prefilling every whole prompt.

The SQuAD harness's default prompt starts with an instruction and two solved examples, the same for every
question. `generate_greedy(share_prefix=True)` prefills that head once and copies its KV into each batch;
this measures both ways on the same prompts (the harness's prompt, context cut to its first --budget tokens)
and counts the questions whose greedy answers differ (float rounding can flip a near tie).

    PYTHONPATH=src python benchmarks/shared_prefix.py --n 64
"""

from __future__ import annotations

import sys
import time

from compressions.benchmarks import common_parser, examples_or_synthetic, report, squad_validation
from compressions.data.prompts import SquadPrompt, SquadPromptConfig, pick_shots
from compressions.data.squad import load_squad
from compressions.data.synthetic import synthetic_squad
from compressions.models import load_model
from compressions.models.generation import common_prefix_length, generate_greedy

COLUMNS = (
    ("share_prefix", "shared head", "{}"),
    ("seconds_per_example", "s / example", "{:.3f}"),
    ("time_vs_whole", "time / whole prompts", "{:.3f}"),
    ("same_answers", "answers equal to whole-prompt ones", "{}"),
)


def build_parser():
    parser = common_parser(__doc__.split("\n")[0], n=64, out="runs/benchmarks/shared_prefix.json")
    parser.add_argument("--data-dir", default=None, help="default: $COMPRESSIONS_DATA_DIR")
    parser.add_argument("--budget", type=int, default=32, help="context tokens kept (prefix truncation)")
    parser.add_argument("--shots", type=int, default=2, help="solved examples in the shared head")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=25, help="at most; stops at a newline")
    return parser


def main(args) -> list[dict]:
    model, tokenizer = load_model(args.model, args.dtype, args.device)
    questions, source = squad_validation(args.data_dir, args.n)
    train, _ = examples_or_synthetic(lambda: load_squad("squad", "train", args.data_dir), synthetic_squad, 1000, "squad train")
    shots = pick_shots(train, args.shots)  # the harness's: shortest train contexts
    layout = SquadPrompt(tokenizer, SquadPromptConfig(shots=args.shots), tuple(shots))
    prompts = []
    for e in questions:
        context = tokenizer(e.context, add_special_tokens=False).input_ids[: args.budget]
        prompts.append(layout.with_context(e.question, context))
    answers, seconds = {}, {}
    for share in (False, True):
        start = time.perf_counter()
        answers[share] = generate_greedy(model, tokenizer, prompts, args.new_tokens, args.batch_size, progress=False, share_prefix=share)
        seconds[share] = time.perf_counter() - start
    rows = [
        {
            "share_prefix": share,
            "seconds_per_example": seconds[share] / len(prompts),
            "time_vs_whole": seconds[share] / seconds[False],
            "same_answers": f"{sum(a == b for a, b in zip(answers[share], answers[False]))} / {len(prompts)}",
        }
        for share in (False, True)
    ]
    facts = {
        "prompts": f"{len(prompts)} from {source}; mean length {sum(map(len, prompts)) / len(prompts):.1f} tokens",
        "shared head": f"{common_prefix_length(prompts)} tokens",
        "timing": "one pass each, wall clock, whole prompts first",
    }
    report(args.out, "Shared prompt head prefilled once vs whole prompts", rows, COLUMNS, facts, args)
    return rows


if __name__ == "__main__":
    main(build_parser().parse_args(sys.argv[1:]))
