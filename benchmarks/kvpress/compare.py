"""Per method and prompt setting: mean Jaccard of the kept context sets per (layer, KV head), ours vs kvpress,
and the share of (layer, head) whose sets are identical. Any python3 works: python3 compare.py"""

import json
from collections import defaultdict
from pathlib import Path

HERE = Path("runs/benchmarks/kvpress")  # benchmarks/kvpress/common.py's (no torch needed here)
ours = json.loads((HERE / "ours.json").read_text())
theirs = json.loads((HERE / "kvpress.json").read_text())

stats = defaultdict(lambda: defaultdict(list))  # (setting, method) -> reading -> [jaccard per (example, layer, head)]
diffs = defaultdict(lambda: defaultdict(int))  # (setting, method, reading) -> position -> times in one set only
for key, kept in ours.items():
    setting, example, method = key.split("/")
    for reading in ("e2e", "ctx", "ctx_edge"):
        if reading not in theirs[key]:
            continue
        for layer, (ours_layer, their_layer) in enumerate(zip(kept, theirs[key][reading])):
            for a, b in zip(ours_layer, their_layer):
                a, b = set(a), set(b)
                stats[setting, method][reading].append(len(a & b) / len(a | b))
                for q in a ^ b:
                    diffs[setting, method, reading][q] += 1

lines = ["| setting | method | e2e mean Jaccard | e2e identical (layer,head) | ctx mean Jaccard | ctx identical (layer,head) |",
         "|---|---|---|---|---|---|"]
for (setting, method), r in stats.items():
    cells = [f"{sum(j) / len(j):.4f} | {sum(x == 1 for x in j)}/{len(j)}" if j else "- | -" for j in (r["e2e"], r["ctx"])]
    lines.append(f"| {setting} | {method} | {cells[0]} | {cells[1]} |")
lines.append("")
for (setting, method), r in stats.items():
    if "ctx_edge" in r:
        e = r["ctx_edge"]
        lines.append(f"- {setting}/{method} ctx_edge (kvpress SnapKV, prefix votes zeroed before pooling, top-M on context): "
                     f"mean Jaccard {sum(e) / len(e):.4f}, identical {sum(j == 1 for j in e)}/{len(e)}")
lines.append("")
lines.append("Context positions most often in only one of the two sets (position: count over examples x layers x heads):")
for (setting, method, reading), d in diffs.items():
    top = sorted(d.items(), key=lambda kv: -kv[1])[:8]
    lines.append(f"- {setting}/{method}/{reading}: " + ", ".join(f"{q}:{n}" for q, n in top))
text = "\n".join(lines)
print(text)
(HERE / "results.md").write_text(text + "\n")
