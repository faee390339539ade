"""Pretraining tasks on unlabelled text, as ICAE's pretraining (Ge et al., ICLR 2024): autoencoding and
continuation. Each task is a SquadFeature whose "answer" is text the decoder must predict from the
compressed context alone, so the pipeline, the batches and the losses are those of SQuAD training:

- `autoencode`: compress a paragraph; after it the decoder reads a cue and regenerates the paragraph.
- `continue`: compress the first half of a paragraph; the decoder predicts the second half. Its first
  token is the suffix (the text read right after the slot), so every target token has a prediction
  position after the compressed context, for soft-token and cache compressors alike.

The teacher of the distillation term is the same decoder reading the uncompressed text in the slot.
The texts here are the distinct paragraphs of the training articles: no question is seen.
"""

from __future__ import annotations

import random

from compressions.compressors.batches import SquadFeature
from compressions.compressors.pipeline import SoftPromptModel
from compressions.data.prompts import PromptParts, answer_ids

TASKS = ("autoencode", "continue", "pretrain")  # `pretrain`: both, one of each per paragraph
AUTOENCODE_CUE = "\nRepeat the context:"


def pretraining_features(pipeline: SoftPromptModel, texts: list[str], task: str, seed: int = 0) -> list[SquadFeature]:
    """Features of `task` for each text (two per text for `pretrain`), shuffled with `seed`."""
    if task not in TASKS:
        raise ValueError(f"unknown pretraining task {task!r}; choose from {TASKS}")
    tokenizer, prefix = pipeline.tokenizer, pipeline.prefix_ids()
    cue = tokenizer(AUTOENCODE_CUE, add_special_tokens=False).input_ids

    def feature(context: list[int], suffix: list[int], target: list[int], group: int) -> SquadFeature:
        return SquadFeature(context, pipeline.compressor_input(context, suffix), prefix, suffix, target, group)

    features = []
    for group, text in enumerate(texts):
        ids = pipeline.context_ids(text)
        if task in ("autoencode", "pretrain"):
            target = answer_ids(tokenizer, PromptParts("", AUTOENCODE_CUE), text)  # then EOS, unless cut
            target = target[: pipeline.config.max_context_tokens]
            features.append(feature(ids, cue, target, group))
        half = len(ids) // 2
        if task in ("continue", "pretrain") and half >= 2:
            features.append(feature(ids[:half], ids[half : half + 1], ids[half + 1 :], group))
    random.Random(seed).shuffle(features)
    return features
