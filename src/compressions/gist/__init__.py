"""Gist tokens, faithful to Mu et al. (NeurIPS 2023, "Learning to Compress Prompts with Gist Tokens").

K `<GIST>` tokens follow the instruction; a mask stops later tokens from reading the instruction, so
the model learns to pack it into the gists' keys and values. At inference the instruction is prefilled
once and only the gists' KV is kept (`cache.compress`), then reused for many inputs (`cache.generate`).

Files: tokens (vocabulary), masks (attention masks and positions), data (prompt layout, collator),
config, train, cache (GistCache), evaluate (ROUGE on Alpaca-format data).
"""
