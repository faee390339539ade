"""Gist masks on small cases checked by hand. Rows are queries, columns keys; G = gist, _ = padding."""

import pytest
import torch

from compressions.gist.masks import additive_mask, gist_mask
from compressions.models.generation import position_ids

G, PAD = 99, 0


def _batch(rows: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """'abGc_' -> ids (letters 1.., G = 99, _ = pad) and the 2D padding mask."""
    ids = [[G if ch == "G" else PAD if ch == "_" else ord(ch) - 96 for ch in row] for row in rows]
    mask = [[0 if ch == "_" else 1 for ch in row] for row in rows]
    return torch.tensor(ids), torch.tensor(mask)


def _matrix(text: str) -> list[list[bool]]:
    return [[ch == "1" for ch in line.split()[0]] for line in text.strip().splitlines()]


CASES = {
    # K = 1, no padding: c and d (the input) see the gist and themselves, not a or b (the instruction).
    ("abGcd", "gist"): """
        10000 a
        11000 b
        11100 G
        00110 c
        00111 d""",
    ("abGcd", "neg_control"): """
        10000
        11000
        11100
        00010
        00011""",
    ("abGcd", "pos_control"): """
        10000
        11000
        11100
        11110
        11111""",
    # K = 2, left padding (the padded query sees itself only, no one sees it).
    ("_aGGc", "gist"): """
        10000 _
        01000 a
        01100 G
        01110 G
        00111 c""",
    ("_aGGc", "neg_control"): """
        10000
        01000
        01100
        01110
        00001""",
    ("_aGGc", "pos_control"): """
        10000
        01000
        01100
        01110
        01111""",
    # K = 2, right padding.
    ("aGGc__", "gist"): """
        100000 a
        110000 G
        111000 G
        011100 c
        000010 _
        000001 _""",
    ("aGGc__", "neg_control"): """
        100000
        110000
        111000
        000100
        000010
        000001""",
    # Gists last (what `compress` prefills) and no gist at all: plain causal.
    ("abG", "gist"): """
        100
        110
        111""",
    ("abc", "neg_control"): """
        100
        110
        111""",
}


@pytest.mark.parametrize("row, condition", list(CASES), ids=lambda x: str(x))
def test_hand_checked_masks(row, condition):
    ids, mask = _batch([row])
    assert gist_mask(ids, G, mask, condition)[0, 0].tolist() == _matrix(CASES[row, condition])


def test_a_batch_is_the_stack_of_its_examples():
    # K = 2 with an input, K = 2 without one (only "Output" after the gists): same rule, padded to one width
    rows = ["abGGcd", "__aGGc"]
    ids, mask = _batch(rows)
    for condition in ("gist", "pos_control", "neg_control"):
        batched = gist_mask(ids, G, mask, condition)
        assert batched.shape == (2, 1, 6, 6) and batched.dtype == torch.bool
        for i, row in enumerate(rows):
            one_ids, one_mask = _batch([row])
            assert torch.equal(batched[i], gist_mask(one_ids, G, one_mask, condition)[0])


def test_additive_mask_and_positions():
    ids, mask = _batch(["_aGc", "aGc_"])
    bool_mask = gist_mask(ids, G, mask)
    float_mask = additive_mask(bool_mask)
    assert float_mask.dtype == torch.float32
    assert torch.equal(float_mask == 0, bool_mask)
    assert float_mask.min().item() == torch.finfo(torch.float32).min
    assert position_ids(mask).tolist() == [[0, 0, 1, 2], [0, 1, 2, 0]]


def test_bad_condition_and_shapes_are_refused():
    ids, mask = _batch(["aGc"])
    with pytest.raises(ValueError, match="condition must be one of"):
        gist_mask(ids, G, mask, "gisty")
    with pytest.raises(ValueError, match="same"):
        gist_mask(ids, G, mask[:, :2])
