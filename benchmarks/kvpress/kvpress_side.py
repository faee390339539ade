"""kvpress side: kept positions of StreamingLLMPress, KnormPress, SnapKVPress, TOVAPress, KVzipPress, ExpectedAttentionPress
on the same token ids.

Run with the side venv (kvpress 0.5.5, transformers 5.2.0, torch 2.13.0+cpu):
  OMP_NUM_THREADS=1 venv/bin/python kvpress_side.py
Reads examples.json (ids written by ours.py), writes kvpress.json.

Alignment (kvpress compresses the whole prefill, prefix included, with a compression ratio):
  input     = prefix + context            (streaming, knorm, tova)
            = prefix + context + suffix   (snapkv: the suffix = question + "Answer:" is the observation window,
                                            window_size = len(suffix); kvpress always keeps the window)
  n_kept    = P + M (+ W for snapkv), via a compression_ratio r with int(k_len * (1 - r)) == n_kept
  streaming : n_sink = P + 4 (our 4 sinks are the context's first 4 entries; the prefix is kept whole)
  snapkv    : kernel_size = 7 (ours' default), window_size = W
  expected_attention : n_sink = P, so that its query statistics come from the context's hidden states alone and
            the prefix is kept whole, as ours
Two readings of kvpress's choice are recorded per (layer, KV head):
  e2e : what the press actually kept (verified against the compressed cache), restricted to the context
        (so it can hold more or fewer than M context entries when prefix entries lose / win the competition)
  ctx : kvpress's own scores, top-M over the context entries only (our selection rule on kvpress's scores)
  ctx_edge (snapkv only): as ctx, but kvpress's SnapKV run with the window's votes for the prefix entries
        zeroed before its average pooling, as our pooling zero-pads at the context's start (one change, to test
        that the pooling edge is the only difference)
  kvzip     : ctx only. KVzipPress scores every entry by its largest attention from the reconstruction's queries,
        then (by design) spends the budget unevenly across layers and heads and masks, not drops, the rest; its
        scores (`score_val`, recorded before that step) are read as ctx. Its prefix length is set to P (it
        takes the chat template's user header otherwise), one chunk; it softmaxes over its first 4 entries, the
        chunk and the reconstruction only, so with a longer prefix (`project`) its scores differ from ours,
        which softmax over the whole cache; with `bos` (P = 1) the two read the same keys.
"""

import json
import time

import kvpress
import kvpress.presses.snapkv_press as snapkv_module
import torch
from common import HERE, M, load_model
from kvpress import ExpectedAttentionPress, KnormPress, KVzipPress, SnapKVPress, StreamingLLMPress, TOVAPress
from kvpress.utils import compute_n_kept
from transformers import DynamicCache

SINKS = 4
KERNEL = 7


def ratio_for(k_len: int, n_kept: int) -> float:
    r = 1 - (n_kept + 0.5) / k_len
    assert compute_n_kept(k_len, r) == n_kept and k_len - int(k_len * (1 - r)) == k_len - n_kept
    return r


def press_for(name: str, p: int, c: int, w: int):
    if name == "snapkv":
        k_len, n_kept = p + c + w, p + M + w
        return SnapKVPress(compression_ratio=ratio_for(k_len, n_kept), window_size=w, kernel_size=KERNEL), k_len, n_kept
    k_len, n_kept = p + c, p + M
    r = ratio_for(k_len, n_kept)
    if name == "streaming":
        return StreamingLLMPress(compression_ratio=r, n_sink=p + SINKS), k_len, n_kept
    if name == "knorm":
        return KnormPress(compression_ratio=r), k_len, n_kept
    if name == "tova":
        return TOVAPress(compression_ratio=r), k_len, n_kept
    if name == "expected_attention":
        return ExpectedAttentionPress(compression_ratio=r, n_sink=p), k_len, n_kept
    raise ValueError(name)


@torch.no_grad()
def run(model, press, ids):
    """(full keys per layer, compressed keys per layer, kvpress scores per layer) for one prefill."""
    x = torch.tensor([ids])
    full = model(input_ids=x, past_key_values=DynamicCache(config=model.config), use_cache=True).past_key_values
    full_keys = [layer.keys.clone() for layer in full.layers]
    scores = {}
    original = press.score

    def recording(module, *args, **kwargs):
        s = original(module, *args, **kwargs)
        scores[module.layer_idx] = s.detach().clone()
        return s

    press.score = recording
    with press(model):
        out = model(input_ids=x, past_key_values=DynamicCache(config=model.config), use_cache=True).past_key_values
    press.score = original
    kept_keys = [layer.keys for layer in out.layers]
    return full_keys, kept_keys, [scores[i] for i in range(len(kept_keys))]


@torch.no_grad()
def kvzip_scores(model, ids, p, repeat_ids):
    """KVzipPress's scores (L, n_kv, T) of one prefill whose first p ids are the prefix."""
    press = KVzipPress(compression_ratio=0.5)  # any ratio > 0 runs the scoring
    seen = {}
    press.compress_post = lambda _model: seen.update(scores=press.score_val[:, 0].clone())  # before any masking
    prepare = press.prepare

    def checked(*args, **kwargs):
        pairs = prepare(*args, **kwargs)
        assert len(pairs) == 1 and pairs[0][1][0].tolist() == repeat_ids + ids[p:], "kvpress reconstructs other ids"
        return pairs

    press.prepare = checked
    with press(model):
        press.prefix_length = p
        model(input_ids=torch.tensor([ids]), past_key_values=DynamicCache(config=model.config), use_cache=True)
    return seen["scores"]


class ZeroPrefixPooling:
    """Stands in for torch.nn.functional inside kvpress's snapkv_press: avg_pool1d sees zero votes for the first
    `p` entries (the prompt prefix), so the context's first entries are pooled as ours are (zero padding)."""

    def __init__(self, p):
        self.p = p

    def avg_pool1d(self, scores, *args, **kwargs):
        scores = scores.clone()
        scores[..., : self.p] = 0
        return torch.nn.functional.avg_pool1d(scores, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)


def main():
    t0 = time.time()
    model = load_model()
    rows = json.loads((HERE / "examples.json").read_text())
    kept, checks = {}, []
    for row in rows:
        pre, ctx, suf = row["prefix_ids"], row["context_ids"], row["suffix_ids"]
        p, c, w = len(pre), len(ctx), len(suf)
        s = kvzip_scores(model, pre + ctx, p, row["kvzip_repeat_ids"])
        kept[f"{row['setting']}/{row['example']}/kvzip"] = {"ctx": s[:, :, p : p + c].topk(M, dim=-1).indices.sort(dim=-1).values.tolist()}
        for name in ["streaming", "knorm", "snapkv", "tova", "expected_attention"]:
            press, k_len, n_kept = press_for(name, p, c, w)
            ids = pre + ctx + (suf if name == "snapkv" else [])
            assert len(ids) == k_len
            full_keys, kept_keys, scores = run(model, press, ids)
            e2e, ctx_top, max_err = [], [], 0.0
            for layer, (fk, kk, s) in enumerate(zip(full_keys, kept_keys, scores)):
                assert kk.shape[2] == n_kept, (kk.shape, n_kept)
                index = s.topk(n_kept, dim=-1).indices  # exactly what ScorerPress.compress does
                gathered = fk.gather(2, index[..., None].expand(-1, -1, -1, fk.shape[-1]))
                max_err = max(max_err, (gathered - kk).abs().max().item())  # the cache holds these entries
                index = index[0].sort(dim=-1).values  # (n_kv, n_kept), absolute positions
                e2e.append([[q - p for q in head.tolist() if p <= q < p + c] for head in index])
                ctx_top.append(s[0, :, p : p + c].topk(M, dim=-1).indices.sort(dim=-1).values.tolist())
            key = f"{row['setting']}/{row['example']}/{name}"
            kept[key] = {"e2e": e2e, "ctx": ctx_top}
            if name == "snapkv":
                snapkv_module.F = ZeroPrefixPooling(p)
                try:
                    _, _, edge_scores = run(model, press_for(name, p, c, w)[0], ids)
                finally:
                    snapkv_module.F = torch.nn.functional
                kept[key]["ctx_edge"] = [s[0, :, p : p + c].topk(M, dim=-1).indices.sort(dim=-1).values.tolist()
                                         for s in edge_scores]
            n_ctx = [len(h) for layer in e2e for h in layer]
            prefix_kept = sum(n_kept - (w if name == "snapkv" else 0) - n for n in n_ctx) / len(n_ctx)
            checks.append({"key": key, "k_len": k_len, "n_kept": n_kept, "ratio": press.compression_ratio,
                           "max_abs_err_cache_vs_scores": max_err, "mean_prefix_entries_kept": prefix_kept,
                           "min_ctx_kept": min(n_ctx), "max_ctx_kept": max(n_ctx)})
            print(checks[-1], flush=True)
    (HERE / "kvpress.json").write_text(json.dumps(kept))
    (HERE / "kvpress_checks.json").write_text(json.dumps(checks, indent=1))
    import transformers

    print("kvpress", kvpress.__version__ if hasattr(kvpress, "__version__") else "?", "transformers", transformers.__version__,
          "torch", torch.__version__, f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
