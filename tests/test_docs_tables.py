"""The tables embedded in README.md and docs/*.md equal their committed files (scripts/docs_tables.py),
and the generated ones (dose.md) equal what their command computes from the committed per-example results."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts" / "docs_tables.py")
docs_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docs_tables)


def test_committed_pages_agree_with_their_results_files():
    pages = docs_tables.default_pages()
    embedded = {path for page in pages for path, _, _ in docs_tables.blocks(page)}
    assert "results/gist-dose/dose/dose.md" in embedded  # the gist page embeds the dose table
    assert docs_tables.check(pages) == []  # every block equals its file, and dose.md its per-example scores


def test_committed_dose_table_is_what_gist_dose_computes():
    text = (ROOT / "results/gist-dose/dose/dose.md").read_text(encoding="utf-8")
    assert text == docs_tables.GENERATED["results/gist-dose/dose/dose.md"].compute(ROOT)


def _page(tmp_path: Path, body: str) -> Path:
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(body, encoding="utf-8")
    return page


def test_rewrite_fills_a_stale_block_and_check_names_it(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    page = _page(
        tmp_path,
        "# Page\n\nText before.\n\n<!-- table: results/t.md -->\n| a | b |\n|---|---|\n| 1 | 3 |\n"
        "<!-- /table -->\n\nText after, 1 | 3.\n\n    <!-- table: not/a/block.md -->\n",
    )
    problems = docs_tables.check([page], root=tmp_path)
    assert len(problems) == 1 and "page.md:5" in problems[0] and "results/t.md" in problems[0]

    assert docs_tables.rewrite(page, root=tmp_path) is True
    assert page.read_text(encoding="utf-8") == (
        "# Page\n\nText before.\n\n<!-- table: results/t.md -->\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "<!-- /table -->\n\nText after, 1 | 3.\n\n    <!-- table: not/a/block.md -->\n"
    )  # only the block changed; an indented example of a marker is not a block
    assert docs_tables.check([page], root=tmp_path) == []
    assert docs_tables.rewrite(page, root=tmp_path) is False  # a second run changes nothing


def test_check_and_main_exit_codes(tmp_path, monkeypatch, capsys):
    (tmp_path / "t.md").write_text("| x |\n|---|\n| 1 |\n", encoding="utf-8")
    page = _page(tmp_path, "<!-- table: t.md -->\n<!-- /table -->\n")
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    assert docs_tables.main(["--check", str(page)]) == 1
    assert "t.md" in capsys.readouterr().err
    assert docs_tables.main([str(page)]) == 0
    assert docs_tables.main(["--check", str(page)]) == 0


def test_unclosed_marker_and_missing_file_are_errors(tmp_path):
    page = _page(tmp_path, "<!-- table: t.md -->\n| x |\n")
    with pytest.raises(docs_tables.DocsTableError, match="page.md:1: .* has no <!-- /table -->"):
        docs_tables.check([page], root=tmp_path)
    page.write_text("<!-- table: missing.md -->\n<!-- /table -->\n", encoding="utf-8")
    with pytest.raises(docs_tables.DocsTableError, match="missing.md"):
        docs_tables.rewrite(page, root=tmp_path)
    assert page.read_text(encoding="utf-8") == "<!-- table: missing.md -->\n<!-- /table -->\n"  # nothing written
