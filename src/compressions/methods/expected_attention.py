"""`expected_attention`: keep the context's KV entries that the queries to come are expected to attend to most.

Inspired by Expected Attention (Devoto et al., 2025, "Expected Attention: KV Cache Compression by Estimating
Attention from Future Queries Distribution"; kvpress's ExpectedAttentionPress): a layer's future queries are
modelled as a Gaussian, fitted to the queries the layer made of the context, and rotated by the rotary
rotation averaged over the next `future` positions. For a Gaussian query q ~ N(mu, S), the expected
exp(scale * q.k) is exp(scale * mu.k + scale^2 * k'Sk / 2); that exponent, softmaxed over the context's entries,
is the expected attention of each query head, averaged over the heads of a KV head and scaled by the entry's
value norm. No question is read, so a document is compressed once for all of them.
Differences from kvpress: the statistics come from the context's own queries (q_proj with its bias and any
reader adapter), not from the whole prefill's hidden states minus 4 sink tokens, and no sink is exempted: the
prompt prefix before the context, which holds the sinks, is always kept whole here; the future positions start
right after the context, where the question is read. Llama-style attention only (rotary, no query/key norm).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.kv_cache import ContextRead, KVCompressor
from compressions.models.loading import not_llama_style


class ExpectedAttention(KVCompressor):
    name = "expected_attention"
    reads_hidden = True  # each layer's input: the layer's queries of the context are made from it

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, future: int = 512, covariance: bool = True, value_norm: bool = True, share_prefix: bool = True
    ):
        super().__init__(tokenizer, share_prefix)
        if future < 1:
            raise CompressionsError(f"expected_attention future must be >= 1, got {future}")
        self.future, self.covariance, self.value_norm = future, covariance, value_norm

    def select(self, keys: torch.Tensor, attention: torch.Tensor | None, read: ContextRead) -> torch.Tensor:
        decoder = read.model.get_decoder()
        if reason := not_llama_style(decoder):
            raise CompressionsError(f"expected_attention needs Llama-style attention: {reason}")
        positions = torch.arange(read.end, read.end + self.future, device=keys.device)[None]
        cos, sin = decoder.rotary_emb(read.values, positions)  # (1, future, head_dim)
        rotation = mean_rotation(cos[0].float().mean(0), sin[0].float().mean(0))
        rows = []
        for layer, block in enumerate(decoder.layers):
            attn = block.self_attn
            x = block.input_layernorm(read.hidden[layer][0])  # (C, d_model): what the layer's attention read
            queries = attn.q_proj(x).view(x.shape[0], -1, keys.shape[-1]).transpose(0, 1).float()  # (H, C, head_dim)
            rows.append(expected_scores(queries, keys[layer].float(), read.values[layer].float(), rotation, attn.scaling, self.covariance, self.value_norm))
        return torch.stack(rows)


def mean_rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(head_dim, head_dim): the rotary map x -> x * cos + rotate_half(x) * sin as a matrix, for averaged cos and sin."""
    half = cos.shape[0] // 2
    swap = torch.zeros(2 * half, 2 * half, dtype=cos.dtype, device=cos.device)  # rotate_half(x) = swap @ x
    swap[:half, half:] = -torch.eye(half)
    swap[half:, :half] = torch.eye(half)
    return torch.diag(cos) + sin[:, None] * swap


def expected_scores(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, rotation: torch.Tensor, scale: float, covariance: bool = True, value_norm: bool = True
) -> torch.Tensor:
    """(n_kv, C): each entry's expected attention from a Gaussian fitted to the (pre-rotary) queries (H, C, head_dim),
    rotated by `rotation`, over the (rotated) keys (n_kv, C, head_dim); mean over the query heads of each KV head."""
    heads, n_kv = queries.shape[0], keys.shape[0]
    mean = queries.mean(dim=1) @ rotation.T  # (H, head_dim)
    keys = keys.repeat_interleave(heads // n_kv, dim=0)  # (H, C, head_dim): query head h reads KV head h // group
    logits = scale * torch.einsum("hcd,hd->hc", keys, mean)
    if covariance:
        centred = queries - queries.mean(dim=1, keepdim=True)
        spread = rotation @ (centred.transpose(1, 2) @ centred / queries.shape[1]) @ rotation.T  # (H, head_dim, head_dim)
        logits = logits + scale**2 / 2 * torch.einsum("hcd,hde,hce->hc", keys, spread, keys)
    scores = logits.softmax(dim=-1).view(n_kv, heads // n_kv, -1).mean(dim=1)
    return scores * values.norm(dim=-1) if value_norm else scores
