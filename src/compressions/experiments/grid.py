"""A grid of runs from one YAML file: groups of cells, each group a kind of run, a base config and axes.

```yaml
out: runs/smoke                     # default runs/<file name>
groups:
  - kind: squad                     # squad: evaluate a method | compressor: train, then evaluate
    base: {limit: 20, model: smollm2-135m}
    axes: {method: [prefix, extractive], budget: [16, 32]}
```

Every cell (the product of its group's axes) is a run folder `<out>/<cell name>/`. Cells run one after
another in this process, or, given devices, as a queue: one child process per device at a time, each
seeing only its device (`CUDA_VISIBLE_DEVICES`), its output in `<cell>/worker.log`. A cell whose
status is `finished` (and has its `metrics.json`) is skipped, and so is a cell another run holds (its
folder lock): two grids on one folder never run the same cell. A failing cell leaves `error.json` and
the grid goes on. `grid_summary.json` lists the finished, skipped and failed cells.

With `--launcher submitit` (experiments.cluster) each cell is a cluster job asking for its group's
`resources` (CellResources: gpus, cpus, time, partition, ...; the grid's, changed by the group's). Every
way of running a cell ends in `run_grid(..., only=[cell])`: this process, a queue worker
(`compressions grid FILE --only CELL`) and a submitit job run the same code.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compressions.config import load_config
from compressions.errors import ConfigError
from compressions.progress import tqdm
from compressions.store.folder_lock import FolderBusyError, folder_lock, lock_holder
from compressions.store.run_folder import atomic_write_json, finished_metrics, write_metrics

log = logging.getLogger(__name__)


@dataclass
class CellResources:
    """What one cell's job asks of a cluster (`compressions grid --launcher submitit`); ignored by the
    in-process runner and the --devices queue."""

    gpus: int = field(default=0, metadata={"help": "GPUs per cell job (0 or 1: a cell is one process; a cell across several GPUs is its own `accelerate launch`)"})
    cpus: int = field(default=4, metadata={"help": "CPU cores per cell job (Slurm --cpus-per-task)"})
    time: int = field(default=240, metadata={"help": "wall-clock limit in minutes (Slurm --time); a cell stopped at it is requeued and resumes from train_state/"})
    partition: str | None = field(default=None, metadata={"help": "Slurm partition (default: the cluster's)"})
    mem_gb: int | None = field(default=None, metadata={"help": "memory per cell job in GB (default: the cluster's)"})
    slurm: dict[str, Any] = field(default_factory=dict, metadata={"help": "further sbatch options, e.g. {account: lab, qos: normal, constraint: h100}"})

    def validate(self, where: str = "resources") -> None:
        if self.gpus not in (0, 1):
            raise ConfigError(f"{where}.gpus must be 0 or 1 (one process per cell), got {self.gpus}")
        if self.cpus < 1 or self.time < 1 or (self.mem_gb is not None and self.mem_gb < 1):
            raise ConfigError(f"{where}.cpus, .time and .mem_gb must be >= 1, got {self.cpus}, {self.time}, {self.mem_gb}")


@dataclass
class CellGroup:
    kind: str = field(
        default="squad",
        metadata={"help": "squad (evaluate a method) | compressor (train, then evaluate) | gist (train a condition, then ROUGE)"},
    )
    config: str | None = field(default=None, metadata={"help": "YAML file of the kind's config, applied before base"})
    base: dict[str, Any] = field(default_factory=dict, metadata={"help": "config values shared by the group's cells"})
    axes: dict[str, list[Any]] = field(default_factory=dict, metadata={"help": "dotted config key -> values; cells = product"})
    name: str | None = field(
        default=None, metadata={"help": "cell-name template over the axes' last key parts, e.g. '{arch}-M{budget}-kl{distillation}'; default: the run's own name"}
    )
    resources: dict[str, Any] = field(default_factory=dict, metadata={"help": "this group's changes to the grid's resources, e.g. {gpus: 1, time: 60}"})


@dataclass
class GridConfig:
    groups: list[CellGroup] = field(default_factory=list, metadata={"help": "groups of cells, run in order"})
    out: str | None = field(default=None, metadata={"help": "grid folder (default runs/<grid file name>)"})
    resources: CellResources = field(default_factory=CellResources, metadata={"help": "each cell job's resources (submitit launcher); a group's `resources` change them"})

    def validate(self) -> None:
        if not self.groups:
            raise ConfigError("a grid needs at least one entry in groups")
        self.resources.validate()
        for i, group in enumerate(self.groups):
            self.group_resources(i)
            if group.kind not in KINDS:
                raise ConfigError(f"groups[{i}].kind {group.kind!r} is not one of {', '.join(KINDS)}")
            empty = [key for key, values in group.axes.items() if not values]
            if empty:
                raise ConfigError(f"groups[{i}].axes {', '.join(empty)} have no values")

    def group_resources(self, i: int) -> CellResources:
        """The grid's resources with groups[i]'s changes."""
        try:
            merged = OmegaConf.merge(OmegaConf.structured(self.resources), self.groups[i].resources)
        except OmegaConfBaseException as err:
            raise ConfigError(f"groups[{i}].resources: {str(err).splitlines()[0]}") from None
        resources = OmegaConf.to_object(merged)
        resources.validate(f"groups[{i}].resources")
        return resources


@dataclass(frozen=True)
class Cell:
    name: str
    kind: str
    config: Any  # the kind's config dataclass, `out` set to the cell's folder
    resources: CellResources = field(default_factory=CellResources)


def _run_squad(config, progress: bool) -> dict:
    from compressions.experiments.squad_run import evaluate_squad

    return evaluate_squad(config, progress=progress)  # writes metrics.json itself


def _run_compressor(config, progress: bool) -> dict:
    from compressions.experiments.compressor_run import train_compressor

    summary = train_compressor(config, progress=progress)
    metrics = {
        **summary.get("eval", {}),
        "method": f"learned-{summary['arch']}",
        "budget": summary["budget"],
        "parameters": summary["compressor_parameters"],
        "train_seconds": summary["train_seconds"],
        "final_loss": summary["last_steps_mean"]["loss"],
    }
    write_metrics(config.out, metrics)
    return metrics


def _run_gist(config, progress: bool) -> dict:
    from compressions.gist.cell import run_gist_cell

    return run_gist_cell(config, progress=progress)  # writes metrics.json itself


def _schemas() -> dict[str, type]:
    from compressions.compressors.train import CompressorTrainConfig
    from compressions.evaluation.squad_eval import SquadEvalConfig
    from compressions.gist.cell import GistRunConfig

    return {"squad": SquadEvalConfig, "compressor": CompressorTrainConfig, "gist": GistRunConfig}


# kind -> run(config) -> metrics (metrics.json written into config.out)
KINDS: dict[str, Callable[[Any, bool], dict]] = {"squad": _run_squad, "compressor": _run_compressor, "gist": _run_gist}


def _dotted(base: dict) -> list[str]:
    """Nested or dotted mapping -> `key=value` overrides for config.load_config."""
    flat = OmegaConf.to_container(OmegaConf.create(base))
    words = []
    for key, value in flat.items():
        if isinstance(value, dict) and value:
            words += [f"{key}.{word}" for word in _dotted(value)]
        else:
            words.append(f"{key}={json.dumps(value)}")
    return words


def expand(grid: GridConfig, out: Path) -> list[Cell]:
    """Every cell's validated config, in order; fails before anything runs on a bad value or a name clash."""
    grid.validate()
    cells: list[Cell] = []
    schemas = _schemas()
    for i, group in enumerate(grid.groups):
        resources = grid.group_resources(i)
        keys = list(group.axes)
        for values in itertools.product(*group.axes.values()):
            overrides = _dotted(group.base) + [f"{k}={json.dumps(v)}" for k, v in zip(keys, values)]
            config = load_config(schemas[group.kind], group.config, overrides)
            leaves = {k.rsplit(".", 1)[-1]: v for k, v in zip(keys, values)}
            try:
                name = group.name.format(**leaves) if group.name else config.run_name
            except (KeyError, IndexError, ValueError) as err:
                raise ConfigError(f"groups[{i}].name {group.name!r} does not fit the axes ({', '.join(leaves)}): {err}") from None
            _check_cell_name(name, i, out)
            config.out = str(out / name)
            cells.append(Cell(name, group.kind, config, resources))
    names = [c.name for c in cells]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ConfigError(f"cells share the names {', '.join(clashes)}: give their group a name template")
    return cells


def _check_cell_name(name: str, group: int, out: Path) -> None:
    """A cell is one folder directly inside the grid folder: a name like `../x` would write elsewhere,
    `a/b` would hide from the report, `.x` would be hidden."""
    if not name or Path(name).name != name or "\\" in name or name.startswith(".") or not name.isprintable():
        raise ConfigError(
            f"groups[{group}] cell name {name!r} is not one folder name inside {out} (no '/', no leading '.', no control character); fix the group's name template"
        )


def summary_line(name: str, metrics: dict) -> str:
    parts = [name]
    for key, fmt in (("f1", "F1 {:.1f}"), ("exact_match", "EM {:.1f}"), ("compression_ratio", "ratio {:.2f}"), ("seconds_per_example", "{:.2f} s/ex")):
        if metrics.get(key) is not None:
            parts.append(fmt.format(metrics[key]))
    return "  ".join(parts)


def run_grid(
    grid: GridConfig,
    out: Path,
    progress: bool = True,
    echo: Callable[[str], None] = tqdm.write,
    only: list[str] | None = None,
) -> dict:
    """Run the unfinished cells (those named in `only`, if given) one after another in this process;
    returns grid_summary.json's content (written only for a whole grid)."""
    cells = _selected(expand(grid, out), only)
    with folder_lock(out, shared=True):  # grids share the folder; a run that locked it as its own keeps them out
        return _run_cells(cells, out, progress, echo, whole=only is None)


def _run_cells(cells: list[Cell], out: Path, progress: bool, echo: Callable[[str], None], whole: bool) -> dict:
    summary: dict[str, list[str]] = {"finished": [], "skipped": [], "failed": []}
    for i, cell in enumerate(tqdm(cells, desc="grid", unit="cell", disable=not progress), 1):
        folder = Path(cell.config.out)
        with ExitStack() as held:
            try:  # held for the whole cell, so that a second grid skips it while it runs
                held.enter_context(folder_lock(folder))
            except FolderBusyError as err:
                summary["skipped"].append(cell.name)
                echo(f"[{i}/{len(cells)}] {cell.name}  skipped: {err}")
                continue
            if finished_metrics(folder) is not None:
                summary["skipped"].append(cell.name)
                continue
            log.info("cell %d of %d: %s", i, len(cells), cell.name)
            try:
                metrics = KINDS[cell.kind](cell.config, progress)  # bars of the cell's own work under the grid's
            except Exception as err:  # one failed cell must not stop the grid
                _record_failure(folder, f"{type(err).__name__}: {err}", traceback.format_exc())
                summary["failed"].append(cell.name)
                echo(f"[{i}/{len(cells)}] {cell.name}  FAILED: {type(err).__name__}: {err}")
                continue
            (folder / "error.json").unlink(missing_ok=True)
        summary["finished"].append(cell.name)
        echo(f"[{i}/{len(cells)}] {summary_line(cell.name, metrics)}")
    if whole:
        atomic_write_json(out / "grid_summary.json", summary)
    return summary


def run_queue(
    grid_file: str | Path,
    overrides: list[str],
    devices: list[str],
    progress: bool = True,
    echo: Callable[[str], None] = tqdm.write,
    only: list[str] | None = None,
) -> dict:
    """Run the unfinished cells (those named in `only`, if given) in child processes, one per device at a time
    (`compressions grid FILE --only CELL` with `CUDA_VISIBLE_DEVICES=<device>`); returns the summary, which is
    grid_summary.json's content when the whole grid was asked for."""
    grid, out = load_grid(grid_file, overrides)
    cells = _selected(expand(grid, out), only)
    summary: dict[str, list[str]] = {"finished": [], "skipped": [], "failed": []}
    todo: queue.SimpleQueue[Cell] = queue.SimpleQueue()
    for cell in cells:
        holder = lock_holder(cell.config.out)
        if finished_metrics(Path(cell.config.out)) is not None or holder is not None:
            summary["skipped"].append(cell.name)
            if holder is not None:
                echo(f"{cell.name}  skipped: in use by another run ({holder})")
        else:
            todo.put(cell)
    bar = tqdm(total=len(cells), initial=len(summary["skipped"]), desc="grid", unit="cell", disable=not progress)
    lock = threading.Lock()

    def worker(device: str) -> None:
        while True:
            try:
                cell = todo.get_nowait()
            except queue.Empty:
                return
            folder = Path(cell.config.out)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "error.json").unlink(missing_ok=True)  # a stale one would hide how this attempt ended
            command = [sys.executable, "-m", "compressions.cli.main", "grid", str(grid_file), *overrides, "--only", cell.name]
            with open(folder / "worker.log", "w", encoding="utf-8") as output:
                code = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "CUDA_VISIBLE_DEVICES": device})
            metrics = finished_metrics(folder)
            holder = lock_holder(folder) if metrics is None else None  # another grid took the cell first
            if metrics is None and holder is None and not (folder / "error.json").is_file():  # the child died before recording anything
                _record_failure(folder, f"worker exited with code {code}", (folder / "worker.log").read_text(encoding="utf-8")[-4000:])
            with lock:
                summary["finished" if metrics is not None else "skipped" if holder is not None else "failed"].append(cell.name)
                bar.update(1)
                line = (
                    summary_line(cell.name, metrics) if metrics is not None
                    else f"{cell.name}  skipped: in use by another run ({holder})" if holder is not None
                    else f"{cell.name}  FAILED (see {folder / 'error.json'})"
                )  # fmt: skip
                echo(f"[device {device}] {line}")

    threads = [threading.Thread(target=worker, args=(device,), daemon=True) for device in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bar.close()
    order = {cell.name: i for i, cell in enumerate(cells)}
    summary = {key: sorted(names, key=order.__getitem__) for key, names in summary.items()}
    if only is None:
        atomic_write_json(out / "grid_summary.json", summary)
    return summary


def visible_devices() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (none on a CPU machine)."""
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _selected(cells: list[Cell], only: list[str] | None) -> list[Cell]:
    if only is None:
        return cells
    unknown = sorted(set(only) - {c.name for c in cells})
    if unknown:
        raise ConfigError(f"no cell named {', '.join(unknown)} in this grid")
    return [c for c in cells if c.name in only]


def _record_failure(folder: Path, error: str, details: str) -> None:
    atomic_write_json(folder / "error.json", {"error": error, "traceback": details})


def load_grid(path: str | Path, overrides: list[str] | None = None) -> tuple[GridConfig, Path]:
    grid = load_config(GridConfig, path, overrides)
    return grid, Path(grid.out or Path("runs") / Path(path).stem)
