"""Our side: kept context positions of the project's KV methods (streaming, knorm, snapkv, tova, kvzip, expected_attention) at M=32.

Run with the project's venv:
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kvpress/ours.py   (from the repo root)
Writes examples.json (the token ids both sides use) and ours.json (kept positions, context-relative).
Two prompt settings:
  bos     - prefix = "<|im_start|>" (1 token, the model's BOS; our frame needs a non-empty prefix),
            suffix = "\\nQuestion: {q}\\nAnswer:"
  project - the project's default zero-shot completion prompt (instruction + "Context:\\n" before,
            "\\nQuestion: {q}\\nAnswer:" after)
kvzip reads, before the context it reconstructs, the ids kvpress's KVzipPress puts there (its request, then
the chat template's generation suffix) instead of our own REPEAT_PROMPT, so both sides score the same queries.
"""

import gzip
import json
import os
import time
from pathlib import Path

from common import HERE, MODEL, M, load_model
from transformers import AutoTokenizer

from compressions.data.prompts import PromptParts, SquadPrompt, SquadPromptConfig
from compressions.methods import Target, build_method

N_EXAMPLES = 5
METHODS = ["streaming", "knorm", "snapkv", "tova", "kvzip", "expected_attention"]
KVPRESS_REQUEST = "\n\nRepeat the previous context exactly."  # KVzipPress.prepare's, for a single chunk


def kvpress_repeat_ids(tokenizer):
    """What KVzipPress reads before the context's tokens: its request, then what the chat template puts after
    a user message (found as KVzipPress finds it, around a dummy message)."""
    dummy = "dummy context"
    separator = "\n" + "#" * len(dummy)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": dummy + separator}], add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    suffix = text.split(separator)[1]
    return tokenizer.encode(KVPRESS_REQUEST, add_special_tokens=False) + tokenizer.encode(suffix, add_special_tokens=False)


def examples():
    data = json.load(gzip.open(Path(os.environ.get("COMPRESSIONS_DATA_DIR", "../shared/data")) / "squad" / "dev-A.json.gz"))["data"]
    out = []
    for article in data[21:]:  # validation articles 22-24 (dev-A has 24): first two paragraphs each, first question
        for para in article["paragraphs"][:2]:
            out.append({"title": article["title"], "context": para["context"], "question": para["qas"][0]["question"]})
    return out[:N_EXAMPLES]


class BosPrompt(SquadPrompt):
    """kvpress's layout: only a BOS before the context."""

    def parts(self, question):
        return PromptParts("<|im_start|>", f"\nQuestion: {question}\nAnswer:")


def prompts(tokenizer):
    return {"bos": BosPrompt(tokenizer), "project": SquadPrompt(tokenizer, SquadPromptConfig(shots=0))}


def main():
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    model = load_model()
    rows, kept = [], {}
    for setting, slot_prompt in prompts(tokenizer).items():
        methods = {name: build_method(name, tokenizer, M) for name in METHODS}
        methods["kvzip"].repeat_ids = kvpress_repeat_ids(tokenizer)
        target = Target(model, slot_prompt)
        for i, ex in enumerate(examples()):
            prefix_ids, suffix_ids = slot_prompt.ids(ex["question"])
            ctx_ids = tokenizer(ex["context"], add_special_tokens=False).input_ids
            rows.append({"setting": setting, "example": i, "title": ex["title"], "question": ex["question"],
                         "prefix_ids": prefix_ids, "context_ids": ctx_ids, "suffix_ids": suffix_ids,
                         "kvzip_repeat_ids": methods["kvzip"].repeat_ids})
            p = len(prefix_ids)
            for name, method in methods.items():
                kv = method.compress(ex["context"], ex["question"], M, target).kv
                assert kv.next_position == p + len(ctx_ids), (kv.next_position, p, len(ctx_ids))
                pos = (kv.positions - p).tolist()  # (L, n_kv, M), context-relative
                kept[f"{setting}/{i}/{name}"] = pos
            print(setting, i, ex["title"], "P", p, "C", len(ctx_ids), "W", len(suffix_ids), flush=True)
    (HERE / "examples.json").write_text(json.dumps(rows, indent=1))
    (HERE / "ours.json").write_text(json.dumps(kept))
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
