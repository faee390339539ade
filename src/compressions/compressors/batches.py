"""SQuAD examples -> token features -> padded training batches (dynamic padding per batch).

A batch holds the student's input (prompt with the soft-token slot, then the answer), the teacher's
input (the same prompt with the context's tokens in the slot), the right-padded context the
compressor reads (with the question after it for a question-aware pipeline), and right-aligned answer labels (see losses.py).
With `pipeline.questions_per_context` > 1 the unit is a context with several of its questions
(`question_groups`, `collate_questions`): each context is read once and its rows serve every question.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from compressions.compressors.losses import IGNORE
from compressions.compressors.pipeline import SoftPromptModel
from compressions.data.squad import SquadExample
from compressions.models.generation import left_pad
from compressions.models.soft_prompts import slot_mask
from compressions.progress import tqdm


@dataclass(frozen=True)
class SquadFeature:
    context_ids: list[int]  # what the teacher reads in the slot
    compressor_ids: list[int]  # what the compressor reads (pipeline.compressor_ids)
    prefix_ids: list[int]
    suffix_ids: list[int]
    answer_ids: list[int]  # the first reference answer, then EOS
    group: int  # index of the distinct context: questions on one paragraph are InfoNCE positives


def squad_features(
    pipeline: SoftPromptModel, examples: list[SquadExample], shots=None, progress: bool = True
) -> list[SquadFeature]:
    """Each example's token features, its prompt holding the pipeline's own solved examples unless `shots` are given."""
    groups: dict[str, int] = {}
    features = []
    for example in tqdm(examples, desc="tokenise", unit="ex", disable=not progress):
        prefix, suffix = pipeline.prompt_ids(example.question, shots)
        answer = pipeline.answer_ids(example.answers[0])
        group = groups.setdefault(example.context, len(groups))
        context, compressed = pipeline.context_ids(example.context), pipeline.compressor_ids(example.context, example.question)
        features.append(SquadFeature(context, compressed, prefix, suffix, answer, group))
    return features


def right_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both [B, N], sequences aligned on the left."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = True
    return ids, mask


def collate(features: list[SquadFeature], pad_id: int, slot_ids: list[int], budget: int) -> dict:
    student = [f.prefix_ids + slot_ids + f.suffix_ids + f.answer_ids for f in features]
    teacher = [f.prefix_ids + f.context_ids + f.suffix_ids + f.answer_ids for f in features]
    input_ids, attention_mask = left_pad(student, pad_id)
    teacher_ids, teacher_mask = left_pad(teacher, pad_id)
    context_ids, context_mask = right_pad([f.compressor_ids for f in features], pad_id)
    width = max(len(f.answer_ids) for f in features)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    for row, f in enumerate(features):
        labels[row, width - len(f.answer_ids) :] = torch.tensor(f.answer_ids)
    slots = [(len(f.prefix_ids), budget) for f in features]
    groups = torch.tensor([f.group for f in features])
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "slot_mask": slot_mask([len(s) for s in student], slots, input_ids.shape[1]),
        "teacher_ids": teacher_ids,
        "teacher_mask": teacher_mask,
        "context_ids": context_ids,
        "context_mask": context_mask,
        "labels": labels,
        "same_context": groups[:, None] == groups[None, :],  # (B, B)
    }


def question_groups(features: list[SquadFeature], per_context: int) -> list[list[SquadFeature]]:
    """The questions of each distinct context, in order, cut into groups of at most `per_context`: one
    training unit each, so an epoch still sees every question once."""
    by_context: dict[int, list[SquadFeature]] = {}
    for feature in features:
        by_context.setdefault(feature.group, []).append(feature)
    return [questions[i : i + per_context] for questions in by_context.values() for i in range(0, len(questions), per_context)]


def collate_questions(groups: list[list[SquadFeature]], pad_id: int, slot_ids: list[int], budget: int) -> dict:
    """`collate` of every question of the groups, with one compressor input per group (each group shares
    its context) and `context_index`: the group row each question reads."""
    batch = collate([f for group in groups for f in group], pad_id, slot_ids, budget)
    batch["context_ids"], batch["context_mask"] = right_pad([group[0].compressor_ids for group in groups], pad_id)
    batch["context_index"] = torch.tensor([row for row, group in enumerate(groups) for _ in group])
    batch["teacher_context_ids"], batch["teacher_context_mask"] = right_pad([group[0].context_ids for group in groups], pad_id)
    return batch
