"""A run folder: everything needed to trust and reproduce one result.

`config.json` (resolved config), `metrics.json`, `sample_predictions.json`, `environment.json`
(package versions, git commit, device), `status.json`, `run.log` and `tensorboard/` (`train/`: per-step
losses from training.loop; `eval/`: the numbers of metrics.json). Every file is written to a temporary
name and renamed, so a killed run never leaves a half-written file that looks complete.

One run owns the folder at a time (store.folder_lock, taken when the RunFolder opens). A run
begins at `save_config`: it refuses a folder that holds a finished run of another config, removes the
results of the run before (so that metrics.json always belongs to config.json) and writes status
`running`; closing writes `finished`, `failed` (with the error) or `interrupted` (Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from compressions.errors import ConfigError
from compressions.store.folder_lock import folder_lock

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TENSORBOARD = "tensorboard"
PACKAGES = ("compressions", "torch", "transformers", "peft", "accelerate", "datasets", "rouge-score")
STATUS_FILE = "status.json"
UNREADABLE = "unreadable"  # the state of a folder whose status.json cannot be read
# What a run leaves as its result; removed when the next run in the folder begins.
RESULT_FILES = ("metrics.json", "sample_predictions.json", "scores.json", "training_summary.json")
# Config keys that may differ between runs of one folder: where the folder is, not what runs in it.
PLACE_KEYS = ("out",)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def numeric_leaves(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested dict as {"outer/inner": value}; strings, booleans and None are left out."""
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves.update(numeric_leaves(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            leaves[f"{prefix}{key}"] = float(value)
    return leaves


def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": git_commit(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": torch.get_num_threads(),
        "command": sys.argv,
    }


def git_commit() -> str | None:
    """HEAD of the checkout this code runs from, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run_state(folder: str | Path) -> str | None:
    """running | finished | failed | interrupted, from status.json (UNREADABLE when it cannot be read); a
    folder from before status files counts as finished when it has metrics.json; None when no run has begun there."""
    try:
        return json.loads((Path(folder) / STATUS_FILE).read_text(encoding="utf-8"))["state"]
    except FileNotFoundError:
        return "finished" if (Path(folder) / "metrics.json").is_file() else None
    except (OSError, ValueError, KeyError, TypeError):  # nothing there can be trusted as finished
        return UNREADABLE


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def is_main_process() -> bool:
    """True except in the non-zero ranks of `torchrun` / `accelerate launch` (read from RANK, so that
    asking never initialises Accelerate's process state before the trainer does)."""
    return os.environ.get("RANK", "0") == "0"


def write_metrics(folder: str | Path, metrics: dict) -> Path:
    """The one way every run (evaluation, training, grid cell) writes its results: metrics.json, written
    atomically by the main process, its numbers also as TensorBoard scalars (step 0) in tensorboard/eval."""
    path = Path(folder) / "metrics.json"
    if is_main_process():
        with SummaryWriter(Path(folder) / TENSORBOARD / "eval") as writer:
            for tag, value in numeric_leaves(metrics).items():
                writer.add_scalar(tag, value, 0)
        atomic_write_json(path, metrics)
    return path


class RunFolder:
    """Owns one run's directory, its lock and its log handler. Under several processes only rank 0 locks
    and writes files; the others log to `run.rank<k>.log`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._held = ExitStack()
        self._started: float | None = None
        log_name = "run.log" if is_main_process() else f"run.rank{os.environ['RANK']}.log"
        try:  # an --out that is a file, lies under a file or cannot be written: one line, before anything runs
            self.path.mkdir(parents=True, exist_ok=True)
            if is_main_process():
                self._held.enter_context(folder_lock(self.path))  # FolderBusyError: another run owns it
                self._refuse_files_of_another_kind()
            self._handler = logging.FileHandler(self.path / log_name, encoding="utf-8")
        except OSError as err:
            self._held.close()
            raise ConfigError(f"cannot use {self.path} as a run folder: {err.strerror} ({err.filename})") from None
        except ConfigError:
            self._held.close()
            raise
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger("compressions").addHandler(self._handler)
        logging.getLogger("compressions").setLevel(logging.INFO)

    def _refuse_files_of_another_kind(self) -> None:
        """A folder holding files a run writes (metrics.json ...) but no status.json was not written by a run:
        they are someone's own, and a run would overwrite them."""
        if (self.path / STATUS_FILE).exists():
            return
        theirs = [name for name in (*RESULT_FILES, "config.json", "environment.json") if (self.path / name).exists()]
        if theirs:
            raise ConfigError(f"{self.path} holds {', '.join(theirs)} that no run wrote (no {STATUS_FILE}); choose another folder, or move them away")

    def write_json(self, name: str, obj) -> Path:
        if is_main_process():
            atomic_write_json(self.path / name, obj)
        return self.path / name

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    def write_metrics(self, metrics: dict) -> Path:
        return write_metrics(self.path, metrics)

    def save_config(self, config) -> None:
        """Begin the run: config.json, environment.json and status `running`, once the folder's earlier
        results are checked against this config and removed."""
        resolved = json.loads(json.dumps(dataclasses.asdict(config), default=str))
        if is_main_process():
            self._refuse_another_finished_config(resolved)
            for name in RESULT_FILES:
                (self.path / name).unlink(missing_ok=True)
            self._started = time.time()
            self.write_status("running")
        self.write_json("config.json", resolved)
        self.write_json("environment.json", environment())

    def _refuse_another_finished_config(self, resolved: dict) -> None:
        if run_state(self.path) != "finished":  # a failed or interrupted run's files are simply replaced
            return
        try:
            old = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # results without their config are no result to protect
        place = {k: None for k in PLACE_KEYS}
        changed = changed_keys({**old, **place}, {**resolved, **place})
        if changed:
            raise ConfigError(
                f"{self.path} holds a finished run of another config ({', '.join(changed)}); "
                "choose another folder, or delete this one to replace it"
            )

    def write_status(self, state: str, error: str | None = None) -> None:
        status = {"state": state, "pid": os.getpid(), "command": sys.argv, "started": self._started, "ended": None}
        if state != "running":
            status["ended"] = time.time()
        if error is not None:
            status["error"] = error
        self.write_json(STATUS_FILE, status)

    def close(self) -> None:
        logging.getLogger("compressions").removeHandler(self._handler)
        self._handler.close()
        self._held.close()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _traceback) -> None:
        try:
            if self._started is None and error is not None and not isinstance(error, KeyboardInterrupt) and is_main_process():
                if not (self.path / "status.json").exists():  # a new folder says why it holds no result; a used one keeps its state
                    self.write_status("failed", f"{kind.__name__}: {error}")
            elif self._started is not None and is_main_process():  # a run that began says how it ended
                if error is None:
                    self.write_status("finished")
                elif isinstance(error, KeyboardInterrupt):
                    self.write_status("interrupted")
                else:
                    self.write_status("failed", f"{kind.__name__}: {error}")
        finally:
            self.close()


def finished_metrics(folder: Path) -> dict | None:
    """metrics.json of a finished cell (files are renamed into place, so one that parses is complete)."""
    if run_state(folder) != "finished":
        return None
    try:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
