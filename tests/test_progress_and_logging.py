"""Output a user reads: progress bars written to a file are plain lines, the CLI logs INFO only with -v, and
an offline Hub is never waited for."""

import io
import os
import subprocess
import sys

import pytest
from test_harness_and_cli import _write_squad

from compressions.data.synthetic import synthetic_squad
from compressions.models import loading
from compressions.progress import tqdm


def test_a_bar_written_to_a_file_is_plain_lines():
    stream = io.StringIO()
    outer = tqdm(range(2), desc="outer", file=stream)
    for _ in outer:
        for _ in tqdm(range(3), desc="inner", file=stream, leave=False):
            pass
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[-1].startswith("outer: 100%|##########| 2/2") and all(line.strip() == line and line for line in lines)


@pytest.mark.parametrize("verbose, info", [([], False), (["-v"], True)])
def test_the_cli_logs_info_only_when_asked(tmp_path, verbose, info):
    data = tmp_path / "squad.json"
    _write_squad(data, synthetic_squad(6))
    argv = [*verbose, "eval", "squad", "--model", "tiny-random-llama", "--data", str(data), "--limit", "2", "--max-new-tokens", "2",
            "--shots", "0", "--out", str(tmp_path / "run"), "train_articles=1"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "compressions.cli.main", *argv], capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    assert ("INFO " in done.stderr) is info and "\r" not in done.stderr
    assert "INFO" in (tmp_path / "run" / "run.log").read_text()  # the run's own log keeps them either way


def test_an_offline_hub_is_never_waited_for(monkeypatch):
    monkeypatch.setattr(loading.hub_constants, "HF_HUB_OFFLINE", True)
    loading.hub_reachable.cache_clear()
    try:
        assert loading.hub_reachable() is False
        with pytest.raises(loading.ModelNotFoundError, match="model 'nobody/no-such-model' not found"):
            loading.load_model("nobody/no-such-model")
    finally:
        loading.hub_reachable.cache_clear()
