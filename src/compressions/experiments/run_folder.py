"""A run folder: everything needed to trust and reproduce one result.

`config.json` (resolved config), `metrics.json`, `sample_predictions.json`, `environment.json`
(package versions, git commit, device), `run.log` and `tensorboard/` (`train/`: per-step losses from
training.loop; `eval/`: the numbers of metrics.json). Every file is written to a temporary name
and renamed, so a killed run never leaves a half-written file that looks complete.
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
from importlib import metadata
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TENSORBOARD = "tensorboard"
PACKAGES = ("compressions", "torch", "transformers", "peft", "accelerate", "datasets", "rouge-score")


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


def is_main_process() -> bool:
    """True except in the non-zero ranks of `torchrun` / `accelerate launch` (read from RANK, so that
    asking never initialises Accelerate's process state before the trainer does)."""
    return os.environ.get("RANK", "0") == "0"


class RunFolder:
    """Owns one run's directory and its log handler. Under several processes only rank 0 writes files;
    the others log to `run.rank<k>.log`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        log_name = "run.log" if is_main_process() else f"run.rank{os.environ['RANK']}.log"
        self._handler = logging.FileHandler(self.path / log_name, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger("compressions").addHandler(self._handler)
        logging.getLogger("compressions").setLevel(logging.INFO)

    def write_json(self, name: str, obj) -> Path:
        if is_main_process():
            atomic_write_json(self.path / name, obj)
        return self.path / name

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    def write_metrics(self, metrics: dict) -> Path:
        """metrics.json, its numbers also as TensorBoard scalars (step 0) in tensorboard/eval."""
        if not is_main_process():
            return self.path / "metrics.json"
        with SummaryWriter(self.tensorboard_dir / "eval") as writer:
            for tag, value in numeric_leaves(metrics).items():
                writer.add_scalar(tag, value, 0)
        return self.write_json("metrics.json", metrics)

    def save_config(self, config) -> None:
        self.write_json("config.json", dataclasses.asdict(config))
        self.write_json("environment.json", environment())

    def close(self) -> None:
        logging.getLogger("compressions").removeHandler(self._handler)
        self._handler.close()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
