"""`compressions gist train` and `gist eval` end to end on the tiny model and synthetic files."""

import dataclasses
import json

import pytest

from compressions.cli.main import main
from compressions.data.synthetic import synthetic_alpaca
from compressions.gist.evaluate import GistEvalConfig, first_tokens, predict, retentions
from compressions.models import load_model
from compressions.store.saved import gist_settings, model_dir


def _write(path, examples):
    path.write_text(json.dumps([dataclasses.asdict(e) for e in examples]))
    return str(path)


def test_train_three_conditions_then_evaluate_them(tmp_path, capsys):
    train = _write(tmp_path / "train.json", synthetic_alpaca(8, seed=1))
    split = _write(tmp_path / "unseen.json", synthetic_alpaca(3, seed=2))
    common = ["--model", "tiny-random-llama", "--data", train, "--k", "2", "train.batch_size=4", "train.micro_batch_size=4"]
    for condition in ("gist", "pos_control", "neg_control"):
        assert main(["gist", "train", "--condition", condition, "--out", str(tmp_path / condition), *common]) == 0
        assert json.loads((tmp_path / condition / "metrics.json").read_text())["steps"] == 2
    out = tmp_path / "eval"
    argv = ["gist", "eval", "--gist", str(tmp_path / "gist"), "--pos-control", str(tmp_path / "pos_control"),
            "--neg-control", str(tmp_path / "neg_control"), "--base", "tiny-random-llama", "--splits", split,
            "--max-new-tokens", "3", "--out", str(out), "n_samples=2", "int8_cache=true"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {
        "gist-2", "gist-2-wrong_instruction", "gist-2-int8", "instruction-first-2", "pos_control", "neg_control", "base",
        "gist_retention", "gist_retention_ci95", "loss_retention", "loss_retention_ci95",
    }  # fmt: skip
    assert set(metrics["gist-2-wrong_instruction"][split]) == {"rougeL", "rougeL_ci95", "rouge1", "rouge2", "n", "rouge_n", "seconds_per_example"}
    assert set(metrics["gist-2"][split]) == {"rougeL", "rougeL_ci95", "rouge1", "rouge2", "n", "rouge_n", "seconds_per_example", "loss", "loss_gists_hidden"}
    assert set(metrics["neg_control"][split]) == {"rougeL", "rougeL_ci95", "rouge1", "rouge2", "n", "rouge_n", "seconds_per_example", "loss"}
    low, high = metrics["gist-2"][split]["rougeL_ci95"]
    assert low <= metrics["gist-2"][split]["rougeL"] <= high
    assert metrics["base"][split]["n"] == 3
    rouge, loss = ({m: metrics[m][split][key] for m in ("gist-2", "pos_control", "neg_control")} for key in ("rougeL", "loss"))
    if rouge["pos_control"] != rouge["neg_control"]:
        expected = (rouge["gist-2"] - rouge["neg_control"]) / (rouge["pos_control"] - rouge["neg_control"])
        assert metrics["gist_retention"][split] == pytest.approx(expected)
    expected = (loss["neg_control"] - loss["gist-2"]) / (loss["neg_control"] - loss["pos_control"])
    assert metrics["loss_retention"][split] == pytest.approx(expected)
    scores = json.loads((out / "scores.json").read_text())  # each example's scores, for pairing runs scored apart
    assert set(scores["gist-2"][split]) == {"nll", "tokens", "rougeL"} and len(scores["gist-2"][split]["nll"]) == 3
    assert set(scores["instruction-first-2"][split]) == {"rougeL"}
    assert 100 * sum(scores["neg_control"][split]["rougeL"]) / 3 == pytest.approx(rouge["neg_control"])
    samples = json.loads((out / "sample_predictions.json").read_text())
    assert len(samples) == 8 and {s["model"] for s in samples} == {"gist-2", "pos_control", "neg_control", "base"}
    printed = capsys.readouterr().out
    assert "gist retention on" in printed and "loss retention on" in printed and "| n | ROUGE on |" in printed

    # the wrong-instruction control reads each input after the next distinct instruction's gists
    model, tokenizer = load_model(model_dir(str(tmp_path / "gist")))
    settings, examples = gist_settings(str(tmp_path / "gist")), synthetic_alpaca(3, seed=2)
    config = GistEvalConfig(gist=str(tmp_path / "gist"), max_new_tokens=3)
    order = list(dict.fromkeys(e.instruction for e in examples))
    moved = [dataclasses.replace(e, instruction=order[(order.index(e.instruction) + 1) % len(order)]) for e in examples]
    wrong = predict(model, tokenizer, examples, settings, config, False, wrong_instruction=True)
    cut = first_tokens(tokenizer, examples[0].instruction, 2)
    assert tokenizer(cut, add_special_tokens=False).input_ids == tokenizer(examples[0].instruction, add_special_tokens=False).input_ids[:2]
    assert wrong == predict(model, tokenizer, moved, settings, config, False)

    assert main([*argv, "rouge=false", "--out", str(tmp_path / "losses")]) == 0
    losses = json.loads((tmp_path / "losses" / "metrics.json").read_text())
    assert "gist_retention" not in losses and set(losses["gist-2"][split]) == {"n", "loss", "loss_gists_hidden"}
    assert losses["loss_retention"] == metrics["loss_retention"]
    assert losses["gist-2"][split]["loss"] == metrics["gist-2"][split]["loss"]

    # rouge_limit: generation on the first 2 examples, the loss still on all 3
    assert main([*argv, "rouge_limit=2", "--out", str(tmp_path / "first2")]) == 0
    first2 = json.loads((tmp_path / "first2" / "metrics.json").read_text())
    cut = json.loads((tmp_path / "first2" / "scores.json").read_text())
    assert (first2["gist-2"][split]["n"], first2["gist-2"][split]["rouge_n"]) == (3, 2)
    assert first2["gist-2"][split]["loss"] == metrics["gist-2"][split]["loss"] and len(cut["gist-2"][split]["nll"]) == 3
    for name in ("gist-2", "instruction-first-2", "pos_control", "neg_control"):
        assert cut[name][split]["rougeL"] == scores[name][split]["rougeL"][:2]  # greedy: the same first two
    # the wrong instruction cycles over the instructions generated for, so it is not a prefix of the full run's
    assert len(cut["gist-2-wrong_instruction"][split]["rougeL"]) == 2
    assert first2["loss_retention"] == metrics["loss_retention"]


def test_retentions_from_each_examples_scores():
    """ROUGE-L: (gist - neg) / (pos - neg); loss: (neg - gist) / (neg - pos), with paired intervals; the gist
    model halfway between its controls on every example retains 0.5 in every resample."""
    pos, neg = [0.6, 0.2, 0.4], [0.2, 0.0, 0.2]
    half = [(p + n) / 2 for p, n in zip(pos, neg)]
    scores = {
        "gist-1": {"s": {"rougeL": half, "nll": [3.0, 2.0, 1.0]}},
        "gist-1-wrong_instruction": {"s": {"rougeL": neg}},
        "pos_control": {"s": {"rougeL": pos, "nll": [2.0, 2.0, 0.5]}},
        "neg_control": {"s": {"rougeL": neg, "nll": [5.0, 3.0, 1.5]}},
    }
    out = retentions(scores)
    assert out["gist_retention"]["s"] == pytest.approx(0.5) and out["gist_retention_ci95"]["s"] == pytest.approx((0.5, 0.5))
    assert out["loss_retention"]["s"] == pytest.approx((9.5 - 6.0) / (9.5 - 4.5))
    low, high = out["loss_retention_ci95"]["s"]
    assert low <= out["loss_retention"]["s"] <= high
    assert retentions({k: v for k, v in scores.items() if k != "neg_control"}) == {}

    # a control generated for more examples pairs with the gist model on the examples both scored
    longer = {**scores, "pos_control": {"s": {"rougeL": [*pos, 0.9], "nll": [2.0, 2.0, 0.5, 7.0]}}}
    assert retentions(longer) == out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gist", "train", "num_gist=3"], "num_gist must be one of"),
        (["gist", "train", "--mode", "full", "mode=half"], "mode must be one of"),
        (["gist", "eval"], "nothing to evaluate"),
        (["gist", "eval", "--base", "tiny-random-llama", "--splits", "missing.json"], "data 'missing.json' not found"),
    ],
)
def test_bad_input_is_one_error_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_dose_of_a_missing_folder_is_one_error_line(capsys):
    assert main(["gist", "dose", "no-such-grid"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: no-such-grid is not a folder (give gist grid folders or their cell folders)"


def test_gist_subcommands_have_help(capsys):
    for argv in (["gist", "train", "--help"], ["gist", "eval", "--help"]):
        with pytest.raises(SystemExit) as code:
            main(argv)
        assert code.value.code == 0
    out = capsys.readouterr().out
    assert "--preset" in out and "--pos-control" in out


@pytest.mark.parametrize("condition", ["gist", "neg_control"])
def test_completion_nll_sums_to_the_training_loss(condition):
    """Summed NLL over summed tokens, from padded batches of examples of different lengths, = the training loss
    of all of them in one batch (transformers' mean over label tokens), under the same mask; and each
    example's sum = its own training loss x its reference tokens."""
    import torch

    from compressions.gist.data import GistCollator, training_example
    from compressions.gist.evaluate import completion_nll
    from compressions.gist.tokens import add_gist_token
    from compressions.gist.train import gist_loss

    model, tokenizer = load_model("tiny-random-llama")
    gist_id = add_gist_token(model, tokenizer)
    examples = synthetic_alpaca(5, seed=3)
    settings = {"num_gist": 2, "prompt_format": "plain", "condition": "gist"}
    nll, tokens = completion_nll(model, tokenizer, examples, settings, condition, GistEvalConfig(base="x", batch_size=2))
    rows = [training_example(tokenizer, e, 2, gist_id, "plain", 10**6) for e in examples]
    collate = GistCollator(tokenizer.pad_token_id, gist_id, condition)
    with torch.no_grad():
        expected, _ = gist_loss(model, collate(rows))
        alone, logs = gist_loss(model, collate(rows[3:4]))
    assert sum(nll) / sum(tokens) == pytest.approx(expected.item(), rel=1e-5)
    assert tokens[3] == logs["completion_tokens"] and nll[3] == pytest.approx(alone.item() * tokens[3], rel=1e-5)
