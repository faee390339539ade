import pytest

from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.evaluation.answer_lengths import answer_token_lengths, length_report
from compressions.evaluation.rouge import aggregate_rouge, rouge_scores
from compressions.evaluation.squad_metrics import aggregate_squad, exact_match, f1, normalize_answer, squad_scores


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  an   apple, a pear ", "apple pear"),
        ("Theatre of the Absurd", "theatre of absurd"),  # 'the' inside a word stays
        ("U.S.A.", "usa"),
        ("1,000 people", "1000 people"),
    ],
)
def test_normalize_answer_follows_official_script(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_and_f1_hand_computed():
    assert exact_match("the Denver Broncos", "Denver Broncos.") == 1.0
    assert exact_match("Broncos", "Denver Broncos") == 0.0
    # pred tokens [cat, sat, on, mat], ref [cat, on, mat]: P = 3/4, R = 1, F1 = 6/7
    assert f1("the cat sat on the mat", "cat on mat") == pytest.approx(6 / 7)
    # repeated tokens count once per occurrence: pred [a_, a_, b] vs ref [a_]: P = 1/3, R = 1, F1 = 1/2
    assert f1("x x y", "x") == pytest.approx(0.5)
    assert f1("", "anything") == 0.0
    assert f1("a the an", "the") == 0.0  # both normalise to nothing: official script gives 0


def test_max_over_references_and_scale():
    scores = squad_scores("Denver", ["Denver Broncos", "Denver"])
    assert scores == {"exact_match": 1.0, "f1": 1.0}
    both = [squad_scores("Denver", ["Denver Broncos"]), squad_scores("Paris", ["Paris"])]
    # first: EM 0, F1 2*(1*0.5)/1.5 = 2/3; second: 1, 1
    assert aggregate_squad(both) == pytest.approx({"exact_match": 50.0, "f1": 100 * (2 / 3 + 1) / 2})


def test_rouge_with_stemming():
    assert rouge_scores("The cats are running", "the cat is running")["rouge1"] == pytest.approx(0.75)
    identical = rouge_scores("a short sentence", "a short sentence")
    assert identical == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert aggregate_rouge([identical, rouge_scores("x", "y")])["rougeL"] == pytest.approx(50.0)


def test_length_report_recommends_covering_99_percent():
    lengths = list(range(1, 101))  # 1..100
    report = length_report(lengths, threshold=12)
    assert report["max"] == 100
    assert report["p50"] == pytest.approx(50.5)
    assert report["share_over_12"] == pytest.approx(0.88)
    # the 99th of 100 sorted lengths is 99; one more token for the stop token
    assert report["recommended_max_new_tokens"] == 100
    covered = sum(n < report["recommended_max_new_tokens"] for n in lengths) / len(lengths)
    assert covered >= 0.99


def test_answer_token_lengths_take_longest_reference(tiny):
    _, tokenizer = tiny
    lengths = answer_token_lengths([["cat", "a black cat sat"]], SquadPrompt(tokenizer))  # after "Answer:", a space
    assert lengths == [len(tokenizer(" a black cat sat", add_special_tokens=False).input_ids)]
    bare = answer_token_lengths([["a black cat sat"]], SquadPrompt(tokenizer, SquadPromptConfig(anchor="")))  # after a newline
    assert bare == [len(tokenizer("a black cat sat", add_special_tokens=False).input_ids)]
