"""Grid runner and grid report on the tiny model with synthetic SQuAD data."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from compressions.cli.main import main
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.errors import ConfigError
from compressions.experiments.grid import expand, load_grid, run_grid
from compressions.experiments.grid_report import BAR_SPREAD, GRID_COLUMNS, pareto_plot, report_order
from compressions.store.report import markdown_table


def _alpaca_file(path, examples):
    path.write_text(json.dumps([{"instruction": e.instruction, "input": e.input, "output": e.output} for e in examples]))
    return str(path)


def _squad_file(path):
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in synthetic_squad(10)
    ]
    path.write_text(json.dumps({"data": [{"title": "A", "paragraphs": paragraphs[:6]}, {"title": "B", "paragraphs": paragraphs[6:]}]}))
    return path


def _grid_file(tmp_path):
    data = str(_squad_file(tmp_path / "squad.json"))
    base = {"model": "tiny-random-llama", "data": data, "train_articles": 1, "max_new_tokens": 2, "prompt": {"shots": 0}}
    grid = {
        "out": str(tmp_path / "runs" / "g"),
        "groups": [
            {"kind": "squad", "base": base, "axes": {"method": ["full", "none"]}},
            {"kind": "squad", "base": base, "axes": {"method": ["prefix"], "budget": [4, 8]}},
            {"kind": "squad", "base": {**base, "data": str(tmp_path / "missing.json")}, "axes": {"method": ["suffix"], "budget": [4]}},
        ],
    }
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def test_grid_runs_cells_records_a_failure_and_skips_finished_cells_on_rerun(tmp_path, capsys):
    path = _grid_file(tmp_path)
    out = tmp_path / "runs" / "g"
    assert main(["grid", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "4 run, 0 skipped, 1 failed: suffix-M4" in printed
    for cell in ("full", "none", "prefix-M4", "prefix-M8"):
        assert {"config.json", "metrics.json", "sample_predictions.json", "run.log"} <= {p.name for p in (out / cell).iterdir()}
    assert "not found" in json.loads((out / "suffix-M4" / "error.json").read_text())["error"]
    assert json.loads((out / "grid_summary.json").read_text())["failed"] == ["suffix-M4"]
    assert {"results.md", "results_summary.json", "pareto.png"} <= {p.name for p in out.iterdir()}
    assert [r["cell"] for r in json.loads((out / "results_summary.json").read_text())] == ["full", "none", "prefix-M4", "prefix-M8"]

    stamps = {cell: (out / cell / "metrics.json").stat().st_mtime_ns for cell in ("full", "prefix-M8")}
    assert main(["grid", str(path)]) == 0
    assert "0 run, 4 skipped, 1 failed" in capsys.readouterr().out
    assert stamps == {cell: (out / cell / "metrics.json").stat().st_mtime_ns for cell in stamps}


def test_a_grid_out_that_is_a_file_is_one_error_line_before_any_cell(tmp_path, capsys):
    path = _grid_file(tmp_path)
    (tmp_path / "taken").write_text("a user's file")
    for out in (tmp_path / "taken", tmp_path / "taken" / "g"):
        assert main(["grid", str(path), f"out={out}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: out: cannot use") and err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "taken").read_text() == "a user's file"


def test_report_names_each_cell_it_cannot_read_and_exits_2(tmp_path, capsys):
    path = _grid_file(tmp_path)
    out = tmp_path / "runs" / "g"
    assert main(["grid", str(path), "--only", "full", "none", "prefix-M4"]) == 0
    capsys.readouterr()
    (out / "none" / "metrics.json").write_text('{"f1": 1')  # cut off
    (out / "prefix-M4" / "status.json").write_text("garbage")
    assert main(["report", str(out)]) == 2
    captured = capsys.readouterr()
    assert "| full |" in captured.out and "| none |" not in captured.out  # the readable cells are still reported
    err = captured.err.strip().splitlines()
    assert err == [f"error: 2 cell(s) of {out} left out: none (metrics.json unreadable), prefix-M4 (status.json unreadable)"]
    assert main(["report", str(out)]) == 2  # and again: nothing was rewritten over them


def test_clashing_cell_names_and_unknown_kinds_fail_before_running(tmp_path):
    clash = {"groups": [{"kind": "squad", "axes": {"method": ["prefix"], "budget": [4], "seed": [0, 1]}}]}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(clash))
    with pytest.raises(ConfigError, match="prefix-M4"):
        expand(*load_grid(tmp_path / "a.yaml"))
    clash["groups"][0]["name"] = "{method}-M{budget}-s{seed}"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(clash))
    assert [c.name for c in expand(*load_grid(tmp_path / "b.yaml"))] == ["prefix-M4-s0", "prefix-M4-s1"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"groups": [{"kind": "nope"}]}))
    with pytest.raises(ConfigError, match=r"groups\[0\].kind 'nope'"):
        load_grid(tmp_path / "c.yaml")


ROWS = [
    {"cell": "full", "method": "full", "budget": None, "compression_ratio": 1.0, "f1": 20.0, "exact_match": 5.0, "seconds_per_example": 2.0},
    {"cell": "none", "method": "none", "budget": None, "compression_ratio": None, "f1": 7.0, "exact_match": 0.0},
    {"cell": "prefix-M32", "method": "prefix", "budget": 32, "compression_ratio": 5.6, "f1": 11.0},
    {"cell": "prefix-M64", "method": "prefix", "budget": 64, "compression_ratio": 2.8, "f1": 14.0},
    {"cell": "prefix-M64-reader", "method": "prefix", "budget": 64, "reader": "runs/reader", "compression_ratio": 2.8, "f1": 16.0},
    {"cell": "conv-M32", "method": "learned-conv", "budget": 32, "compression_ratio": 5.6, "f1": 9.0, "parameters": 1234567},
]


def test_grid_table_shows_every_column_and_missing_values_as_dashes():
    lines = markdown_table(ROWS, GRID_COLUMNS).splitlines()
    assert lines[0] == "| cell | method | M | reader | ratio | F1 | F1 95% CI | EM | ROUGE-L | s/example | parameters | n |"
    assert lines[3] == "| none | none | - | - | - | 7.0 | - | 0.0 | - | - | - | - |"
    assert lines[6] == "| prefix-M64-reader | prefix | 64 | runs/reader | 2.80 | 16.0 | - | - | - | - | - | - |"
    assert lines[7] == "| conv-M32 | learned-conv | 32 | - | 5.60 | 9.0 | - | - | - | - | 1,234,567 | - |"


def test_a_report_puts_the_bounds_first_then_rows_by_reader_and_budget():
    shuffled = [ROWS[i] for i in (5, 3, 1, 4, 2, 0)]
    assert [r["cell"] for r in report_order(shuffled)] == ["full", "none", "conv-M32", "prefix-M32", "prefix-M64", "prefix-M64-reader"]


def test_pareto_plot_draws_one_series_per_method_and_the_bounds_as_lines(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    saved = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path: saved.append(fig))
    pareto_plot(ROWS, tmp_path / "p.png")
    base, reader = saved[0].axes  # one panel per reader; learned compressors in both
    assert (base.get_title(), reader.get_title()) == ("base model", "reader: runs/reader")
    assert sorted(line.get_label() for line in base.lines) == ["full (20.0)", "learned-conv", "none (7.0)", "prefix"]
    assert sorted(line.get_label() for line in reader.lines) == ["learned-conv", "prefix"]
    prefix = next(line for line in base.lines if line.get_label() == "prefix")
    assert list(prefix.get_xdata()) == [2.8, 5.6] and list(prefix.get_ydata()) == [14.0, 11.0]  # sorted by ratio
    assert [line.get_color() for line in reader.lines if line.get_label() == "prefix"] == [prefix.get_color()]
    assert base.get_xscale() == "log"
    assert [(a.get_text(), a.xy) for a in base.texts] == [("M=64", (2.8, 14.0)), ("M=32", (5.6, 11.0))]  # one per budget, on top
    pareto_plot([r for r in ROWS if not r.get("reader")], tmp_path / "q.png")
    assert len(saved[1].axes) == 1  # no reader, one panel
    low, high = base.get_xlim()
    assert low < 2.8 and high > 5.6  # every point inside the axes
    assert not base.collections and not base.patches  # no row has an interval: no bar, no band


def test_pareto_plot_draws_each_interval(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    saved = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path: saved.append(fig))
    with_intervals = [r | {"f1_ci95": [r["f1"] - 2, r["f1"] + 3]} for r in ROWS if not r.get("reader")]
    pareto_plot(with_intervals, tmp_path / "p.png")
    (ax,) = saved[0].axes
    bars = {tuple(map(tuple, segment.tolist())) for collection in ax.collections for segment in collection.get_segments()}
    # prefix at 2.8 (F1 14) and 5.6 (11), learned-conv at 5.6 (9): each from F1 - 2 to F1 + 3, the two methods'
    # bars at 5.6 a factor BAR_SPREAD apart around it (learned-conv first by name: left); prefix alone at 2.8
    left, right = BAR_SPREAD**-0.5, BAR_SPREAD**0.5
    expected = {(2.8, 12.0, 17.0), (5.6 * right, 9.0, 14.0), (5.6 * left, 7.0, 12.0)}
    assert len(bars) == 3 and all(x0 == x1 for (x0, _), (x1, _) in bars)
    drawn = sorted((x0, y0, y1) for (x0, y0), (_, y1) in bars)
    assert all(got == pytest.approx(want) for got, want in zip(drawn, sorted(expected), strict=True))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2.8", "5.6"]  # a label at each ratio
    assert len(ax.patches) == 2  # a band for each bound


def test_device_queue_runs_each_cell_in_a_child_that_sees_one_device(tmp_path, capsys):
    """Two workers ('devices' 0 and 1; on CPU the children simply ignore them) give the same scores as
    this process, each cell records the device it was given, and a failed cell is still reported."""
    data = yaml.safe_load(_grid_file(tmp_path).read_text())
    data["groups"] = data["groups"][1:]  # the prefix cells and the failing suffix cell
    queued_grid = tmp_path / "q.yaml"
    queued_grid.write_text(yaml.safe_dump(data))
    cells = ["prefix-M4", "prefix-M8"]
    assert main(["grid", str(queued_grid), "--devices", "0", "1"]) == 0
    assert "2 run, 0 skipped, 1 failed: suffix-M4" in capsys.readouterr().out
    out = tmp_path / "runs" / "g"
    assert {json.loads((out / c / "environment.json").read_text())["cuda_visible_devices"] for c in cells} == {"0", "1"}
    assert "not found" in json.loads((out / "suffix-M4" / "error.json").read_text())["error"]
    assert (out / "prefix-M4" / "worker.log").is_file()

    serial = run_grid(load_grid(queued_grid)[0], tmp_path / "serial", progress=False, echo=lambda _: None)
    assert serial == {"finished": cells, "skipped": [], "failed": ["suffix-M4"]}
    for cell in cells:
        assert json.loads((out / cell / "metrics.json").read_text())["f1"] == json.loads((tmp_path / "serial" / cell / "metrics.json").read_text())["f1"]
    assert main(["grid", str(queued_grid), "--devices", "0", "1"]) == 0
    assert "0 run, 2 skipped, 1 failed" in capsys.readouterr().out


def test_device_queue_with_only_runs_just_those_cells(tmp_path, capsys):
    data = yaml.safe_load(_grid_file(tmp_path).read_text())
    data["groups"] = data["groups"][1:]
    queued_grid = tmp_path / "q.yaml"
    queued_grid.write_text(yaml.safe_dump(data))
    assert main(["grid", str(queued_grid), "--devices", "0", "0", "--only", "prefix-M8", "suffix-M4"]) == 0
    assert "1 run, 0 skipped, 1 failed: suffix-M4" in capsys.readouterr().out
    out = tmp_path / "runs" / "g"
    assert (out / "prefix-M8" / "worker.log").is_file() and (out / "prefix-M8" / "metrics.json").is_file()
    assert not (out / "prefix-M4").exists()
    assert not (out / "grid_summary.json").exists()  # a part of the grid does not stand for the whole
    assert main(["grid", str(queued_grid), "--devices", "0", "--only", "prefix-M9"]) == 2
    assert "no cell named prefix-M9" in capsys.readouterr().err


def test_gist_cell_trains_then_scores_and_the_report_draws_controls_as_lines(tmp_path):
    train, split = _alpaca_file(tmp_path / "train.json", synthetic_alpaca(8, seed=1)), _alpaca_file(tmp_path / "unseen.json", synthetic_alpaca(3, seed=2))
    base = {
        "train": {"model": "tiny-random-llama", "data": train, "limit": 8, "train": {"batch_size": 4, "micro_batch_size": 4}},
        "eval": {"splits": [split], "limit": 3, "max_new_tokens": 2},
    }
    grid = {"out": str(tmp_path / "g"), "groups": [{"kind": "gist", "base": base, "axes": {"train.condition": ["gist", "pos_control"]}}]}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    assert main(["grid", str(tmp_path / "g.yaml")]) == 0

    cell = tmp_path / "g" / "gist-k1-full-test"
    row = json.loads((cell / "metrics.json").read_text())
    scores = json.loads((cell / "eval" / "metrics.json").read_text())["gist-1"][split]
    assert row["method"] == "gist-1" and row["budget"] == 1 and row["n"] == 3 and row["rougeL"] == scores["rougeL"]
    assert row["compression_ratio"] > 1  # every instruction is longer than one gist
    assert (cell / "train" / "model" / "gist_config.json").is_file()
    control = json.loads((tmp_path / "g" / "pos_control-k1-full-test" / "metrics.json").read_text())
    assert control["method"] == "pos_control" and control["compression_ratio"] is None
    assert "| gist-k1-full-test | gist-1 | 1 |" in (tmp_path / "g" / "results.md").read_text()


def test_gist_dose_pairs_the_cells_of_each_size_and_draws_retention(tmp_path, capsys):
    """A dose-response grid (condition x training examples): `gist dose` pairs the three conditions of each
    size example by example; its retention is the one `gist eval` gives the same three models scored together."""
    from compressions.gist.evaluate import retentions

    train, split = _alpaca_file(tmp_path / "train.json", synthetic_alpaca(8, seed=1)), _alpaca_file(tmp_path / "unseen.json", synthetic_alpaca(4, seed=2))
    base = {
        "train": {"model": "tiny-random-llama", "data": train, "train": {"batch_size": 4, "micro_batch_size": 4, "learning_rate": 1e-2}},
        "eval": {"splits": [split], "max_new_tokens": 2},
    }
    axes = {"train.condition": ["gist", "pos_control", "neg_control"], "train.limit": [4, 8]}
    grid = {"out": str(tmp_path / "g"), "groups": [{"kind": "gist", "name": "{condition}-n{limit}", "base": base, "axes": axes}]}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    assert main(["grid", str(tmp_path / "g.yaml")]) == 0
    assert main(["gist", "dose", str(tmp_path / "g")]) == 0
    assert "| 8 | 1 |" in capsys.readouterr().out

    rows = json.loads((tmp_path / "g" / "dose" / "dose.json").read_text())
    assert [(r["examples"], r["k"], r["split"]) for r in rows] == [(4, 1, split), (8, 1, split)]
    assert (tmp_path / "g" / "dose" / "dose.png").stat().st_size > 0
    for row in rows:
        cells = {c: tmp_path / "g" / f"{c}-n{row['examples']}" / "eval" for c in ("gist", "pos_control", "neg_control")}
        scores = {name: by_split for c in cells.values() for name, by_split in json.loads((c / "scores.json").read_text()).items()}
        together = retentions(scores)
        assert row["loss_retention"] == together["loss_retention"][split]
        losses = {c: json.loads((cells[c] / "metrics.json").read_text()) for c in cells}
        gist, pos, neg = (losses[c][name][split]["loss"] for c, name in (("gist", "gist-1"), ("pos_control", "pos_control"), ("neg_control", "neg_control")))
        assert row["loss_retention"] == pytest.approx((neg - gist) / (neg - pos))
        rouge = {c: json.loads((tmp_path / "g" / f"{c}-n{row['examples']}" / "metrics.json").read_text())["rougeL"] for c in cells}
        assert (row["gist"], row["pos_control"], row["neg_control"]) == pytest.approx((rouge["gist"], rouge["pos_control"], rouge["neg_control"]))
        assert row["vs_wrong_instruction"].startswith(("+", "-")) and row["vs_truncation"].count("[") == 1


def test_a_loss_only_gist_cell_finishes_and_pairs_with_controls_that_generated(tmp_path):
    """eval.rouge=false scores the held-out loss only (no generation); the cell still finishes, and `gist dose`
    pairs it with controls that did generate: loss retention as for three loss cells, no ROUGE retention."""
    from compressions.gist.dose import dose_rows, gist_cells

    train, split = _alpaca_file(tmp_path / "train.json", synthetic_alpaca(8, seed=1)), _alpaca_file(tmp_path / "unseen.json", synthetic_alpaca(4, seed=2))
    base = {
        "train": {"model": "tiny-random-llama", "data": train, "limit": 8, "train": {"batch_size": 4, "micro_batch_size": 4}},
        "eval": {"splits": [split], "max_new_tokens": 2},
    }
    grid = {
        "out": str(tmp_path / "g"),
        "groups": [
            {"kind": "gist", "name": "{condition}", "base": {**base, "eval": {**base["eval"], "rouge": False}}, "axes": {"train.condition": ["gist"]}},
            {"kind": "gist", "name": "{condition}", "base": base, "axes": {"train.condition": ["pos_control", "neg_control"]}},
        ],
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(grid))
    assert main(["grid", str(tmp_path / "g.yaml")]) == 0

    row = json.loads((tmp_path / "g" / "gist" / "metrics.json").read_text())
    assert row["rougeL"] is None and row["scores"][split]["loss"] > 0 and row["scores"][split]["n"] == 4
    (dose,) = dose_rows(gist_cells([tmp_path / "g"]))
    losses = {c: json.loads((tmp_path / "g" / c / "metrics.json").read_text())["scores"][split]["loss"] for c in ("gist", "pos_control", "neg_control")}
    assert dose["loss_retention"] == pytest.approx((losses["neg_control"] - losses["gist"]) / (losses["neg_control"] - losses["pos_control"]))
    assert dose["gist"] is None and dose["pos_control"] is not None and "gist_retention" not in dose
    assert dose["vs_wrong_instruction"] is None and dose["vs_truncation"] is None
    assert main(["gist", "dose", str(tmp_path / "g")]) == 0  # its table and plot take the empty ROUGE cells


def test_gist_dose_pairs_cells_generated_for_different_numbers_of_examples():
    """A cell scored with rouge_limit pairs with the others on the first examples all of them generated for."""
    from compressions.gist.dose import dose_rows

    rouge = {"gist-1": [0.5, 0.5, 0.9], "pos_control": [1.0, 0.6], "neg_control": [0.0, 0.4, 0.1, 0.2]}
    cells = [({"train_examples": 500, "budget": 1}, {name: {"s": {"rougeL": v}}}) for name, v in rouge.items()]
    (row,) = dose_rows(cells)
    assert row["rouge_n"] == 2
    assert (row["gist"], row["pos_control"], row["neg_control"]) == pytest.approx((50.0, 80.0, 20.0))
    assert row["gist_retention"] == pytest.approx((1.0 - 0.4) / (1.6 - 0.4))


def test_gist_dose_compares_more_gists_with_gist_1_on_the_same_examples():
    """K = 5 is paired with the gist-1 cell of the same size (on the examples both generated for); K = 1 rows
    and sizes without a gist-1 cell leave it empty."""
    from compressions.gist.dose import dose_rows

    def cell(examples, k, name, rouge):
        return {"train_examples": examples, "budget": k}, {name: {"s": {"rougeL": rouge}}}

    cells = [cell(4000, 1, "gist-1", [0.5, 0.2, 0.4]), cell(4000, 5, "gist-5", [0.6, 0.2]), cell(500, 5, "gist-5", [0.1])]
    rows = {(r["examples"], r["k"]): r for r in dose_rows(cells)}
    assert rows[(4000, 5)]["vs_gist_1"].startswith("+5.0 [")  # (60 + 20) / 2 - (50 + 20) / 2
    assert rows[(4000, 1)]["vs_gist_1"] is None and rows[(500, 5)]["vs_gist_1"] is None


def test_dose_plot_keeps_k_series_apart_and_a_runaway_interval_off_the_panel(tmp_path, monkeypatch):
    """At one size, K = 1 and K = 10 sit side by side (nudged right by K's rank); a ROUGE retention whose
    interval spans -10 to 12 (controls nearly tied) leaves the panel at [-1, 2] instead of flattening the rest."""
    import matplotlib.pyplot as plt

    from compressions.gist.dose import dose_plot

    saved = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path: saved.append(fig))
    row = {"split": "s", "gist_retention": 0.4, "gist_retention_ci95": (0.1, 0.7), "loss_retention": 0.5, "loss_retention_ci95": (0.45, 0.55)}
    rows = [
        {**row, "examples": 2000, "k": 1},
        {**row, "examples": 4000, "k": 1},
        {**row, "examples": 4000, "k": 10, "gist_retention": 1.5, "gist_retention_ci95": (-10.3, 11.7)},
    ]
    dose_plot(rows, tmp_path / "dose.png")
    rouge, loss = saved[0].axes
    assert rouge.get_ylim() == (-1.0, 2.0)
    assert -1.0 < loss.get_ylim()[0] < 0.0 and 1.0 < loss.get_ylim()[1] < 2.0  # both controls' lines in view
    k1, k10 = (line.get_xdata() for line in rouge.lines if line.get_marker() == "o")
    assert list(k1) == [2000, 4000] and list(k10) == pytest.approx([4000 * 1.04])


ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "configs" / "grids").glob("*.yaml")))
def test_every_shipped_grid_expands_to_distinct_valid_cells(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # grids name their config files from the repository root, where they are run
    grid, out = load_grid(f"configs/grids/{path}")
    cells = expand(grid, out)
    assert cells and len({c.name for c in cells}) == len(cells)


def test_an_override_reaches_into_one_group_of_a_shipped_grid(monkeypatch):
    """`groups.0.base.eval.rouge_limit=100` (a list index in the key path) changes that group's cells only;
    a name where an index goes is one error line."""
    monkeypatch.chdir(ROOT)
    cells = expand(*load_grid("configs/grids/gist-dose.yaml", ["groups.0.base.eval.rouge_limit=100"]))
    limits = {c.name: c.config.eval.rouge_limit for c in cells}
    assert limits["gist-n500"] == limits["neg_control-n2000"] == 100 and limits["gist-n4000"] is None
    with pytest.raises(ConfigError, match="not an int"):
        load_grid("configs/grids/gist-dose.yaml", ["groups.first.base.eval.rouge_limit=100"])


def test_a_star_override_reaches_every_group(monkeypatch):
    """`groups.*.base.eval.batch_size=64` sets it in all three groups of the dose grid (the GPU command), and
    nothing else moves; a star over nothing is one error line."""
    monkeypatch.chdir(ROOT)
    plain = expand(*load_grid("configs/grids/gist-dose.yaml"))
    starred = expand(*load_grid("configs/grids/gist-dose.yaml", ["groups.*.base.eval.batch_size=64"]))
    assert len(plain) == len(starred) == 15
    assert {c.config.eval.batch_size for c in plain} == {8} and {c.config.eval.batch_size for c in starred} == {64}
    for before, after in zip(plain, starred):
        assert dataclasses.replace(after.config.eval, batch_size=8) == before.config.eval
        assert after.config.train == before.config.train
    with pytest.raises(ConfigError, match="nothing at groups.0.base.nothing for"):
        load_grid("configs/grids/gist-dose.yaml", ["groups.*.base.nothing.*.device=cuda"])
