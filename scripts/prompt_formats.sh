#!/usr/bin/env bash
# The prompt-format sweep behind the default SQuAD prompt (docs/baselines.md, "Prompt format"): the embedded model,
# first 200 validation questions (dev-A articles 21-24), full context. About 2-3 minutes per format on 2 CPU cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
C=compressions
$C eval squad --limit 200 --prompt-format chat --shots 0 --out runs/formats/chat-anchor-0shot
$C eval squad --limit 200 --prompt-format chat --shots 2 --out runs/formats/chat-anchor-2shot
$C eval squad --limit 200 --prompt-format completion --shots 0 --out runs/formats/completion-0shot
$C eval squad --limit 200 --prompt-format completion --shots 1 --out runs/formats/completion-1shot
$C eval squad --limit 200 --prompt-format completion --shots 2 --out runs/formats/completion-2shot
python - <<'PY'
import json, pathlib
for run in sorted(pathlib.Path("runs/formats").iterdir()):
    m = json.loads((run / "metrics.json").read_text())
    print(f"{run.name:24} F1 {m['f1']:5.1f}  EM {m['exact_match']:5.1f}  gold-in-answer {m['gold_in_prediction']:5.1f}  "
          f"prompt tokens {m['mean_prompt_tokens']:5.0f}  s/example {m['seconds_per_example']:.2f}")
PY
