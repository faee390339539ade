"""The `<GIST>` token: added to the tokenizer, its embedding row(s) started at the mean of the others."""

from __future__ import annotations

import torch
from tokenizers import AddedToken
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError

GIST_TOKEN = "<GIST>"


def gist_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id of `<GIST>`; a clear error when the tokenizer has none (not a gist model)."""
    token_id = tokenizer.convert_tokens_to_ids(GIST_TOKEN)
    if token_id is None or token_id == tokenizer.unk_token_id or token_id >= len(tokenizer):
        raise CompressionsError(f"the tokenizer has no {GIST_TOKEN} token: load a gist model (see `compressions gist train`)")
    return token_id


@torch.no_grad()
def add_gist_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """Add `<GIST>` (once) and grow the model's embeddings; returns its id.

    New rows of the input embedding, and of the output head when it is not tied, start at the mean
    of the existing rows (as the authors did), not at transformers' sampled `mean_resizing`.
    """
    if GIST_TOKEN in tokenizer.get_vocab():
        return gist_token_id(tokenizer)
    old = model.get_input_embeddings().weight.shape[0]
    tokenizer.add_tokens([AddedToken(GIST_TOKEN, special=True, normalized=False)], special_tokens=True)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    heads = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != heads[0].data_ptr():
        heads.append(output.weight)
    for weight in heads:
        weight[old:] = weight[:old].mean(dim=0)
    return gist_token_id(tokenizer)
