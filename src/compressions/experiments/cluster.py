"""A grid's cells as cluster jobs through submitit (`compressions grid FILE --launcher submitit`).

Each unfinished cell becomes one job of `submitit.AutoExecutor`: Slurm when `sbatch` is there, local
processes otherwise (`cluster`: auto | slurm | local | debug). A job runs exactly what `compressions grid
FILE --only CELL` runs (experiments.grid.run_grid with `only`), so the rules are the grid's own: a job takes
the cell's folder lock, skips a finished cell, records a failure in `error.json`; a trainer resumes from the
cell's `train_state/`. The job's resources are the cell's group's (`resources` in the grid file,
grid.CellResources).

Beside the run files, a cell folder gets `job.json` (job id, cluster, host, time, log paths; earlier
attempts under `earlier`) and `submitit/` (the job's pickles and its stdout/stderr). A rerun of the grid
skips finished cells, waits for a cell whose recorded job is still queued or running (never submitting
it twice), and submits again the failed and the missing ones. On Slurm a job stopped at its time limit
or preempted is requeued by submitit (`CellJob.checkpoint`) and resumes from `train_state/`.

submitit's local executor starts every job at once and shows each the same first GPUs; on one machine
with several GPUs the --devices queue (experiments.grid.run_queue) gives each cell its own GPU.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compressions.errors import ConfigError
from compressions.experiments.grid import Cell, CellResources, expand, load_grid, run_grid, summary_line
from compressions.progress import tqdm
from compressions.store.folder_lock import lock_holder
from compressions.store.run_folder import atomic_write_json, finished_metrics

log = logging.getLogger(__name__)

CLUSTERS = ("auto", "slurm", "local", "debug")
JOB_FILE = "job.json"
LOGS = "submitit"  # the job's folder inside the cell: pickles, stdout, stderr
# Slurm states of a job that may still run the cell (sacct's names)
SLURM_ALIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED")


def _submitit():
    """The submitit module, imported without its logging set-up: that runs `logging.config.dictConfig`, which
    closes every existing handler, and absl's (installed by rouge-score, which the gist evaluation imports)
    closes sys.stderr with it; its jobs inherit the setting."""
    os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
    import submitit

    return submitit


class CellJob:
    """The function each job runs: one cell of the grid file, from the submitting directory.

    A class so that submitit can requeue it: on a time limit or a preemption (Slurm's signal) submitit
    calls `checkpoint`, which resubmits the same cell; the rerun resumes from its train_state/."""

    def __init__(self, grid_file: str, overrides: list[str], cell: str, cwd: str):
        self.grid_file, self.overrides, self.cell, self.cwd = grid_file, list(overrides), cell, cwd

    def __call__(self) -> dict:
        os.chdir(self.cwd)  # the grid's relative paths (out, data, configs) mean what they meant where it was submitted
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        grid, out = load_grid(self.grid_file, self.overrides)
        return run_grid(grid, out, progress=False, echo=print, only=[self.cell])

    def checkpoint(self, *args, **kwargs):
        return _submitit().helpers.DelayedSubmission(CellJob(self.grid_file, self.overrides, self.cell, self.cwd))


def executor_for(folder: Path, resources: CellResources, name: str, cluster: str = "auto"):
    """A submitit executor whose jobs write into `folder` and ask for `resources`."""
    submitit = _submitit()
    if cluster not in CLUSTERS:
        raise ConfigError(f"cluster {cluster!r} is not one of {', '.join(CLUSTERS)}")
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("cluster slurm: no `sbatch` on this machine")
    executor = submitit.AutoExecutor(folder=folder, cluster=None if cluster == "auto" else cluster)
    parameters: dict[str, Any] = {
        "name": name,
        "timeout_min": resources.time,
        "cpus_per_task": resources.cpus,
        "gpus_per_node": resources.gpus,
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if resources.mem_gb is not None:
        parameters["mem_gb"] = resources.mem_gb
    if resources.partition is not None:
        parameters["slurm_partition"] = resources.partition
    if resources.slurm:
        parameters["slurm_additional_parameters"] = dict(resources.slurm)
    executor.update_parameters(**parameters)
    return executor


def read_job(folder: Path) -> dict | None:
    try:
        return json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def live_job(folder: Path):
    """The job recorded in `folder`/job.json while it may still run the cell: a submitit job to wait for
    (Slurm), the string 'running' (a local job of another process on this host), or None."""
    record = read_job(folder)
    if not record:
        return None
    if record.get("cluster") == "slurm":
        job = _submitit().SlurmJob(folder=folder / LOGS, job_id=str(record["job_id"]))
        return job if job.state.upper().split()[0] in SLURM_ALIVE else None
    if record.get("cluster") == "local" and record.get("host") == socket.gethostname():
        try:
            os.kill(int(record["job_id"]), 0)  # the job's controller process still exists
        except (OSError, ValueError):
            return None
        return "running"
    return None


def _record_job(folder: Path, job, cluster: str) -> dict:
    earlier = read_job(folder)
    record = {
        "job_id": str(job.job_id),
        "cluster": cluster,
        "host": socket.gethostname(),
        "submitted": datetime.datetime.now().isoformat(timespec="seconds"),
        "stdout": str(job.paths.stdout),
        "stderr": str(job.paths.stderr),
        "earlier": ([{k: v for k, v in earlier.items() if k != "earlier"}] + earlier.get("earlier", [])) if earlier else [],
    }
    atomic_write_json(folder / JOB_FILE, record)
    return record


def _job_outcome(cell: Cell, job) -> None:
    """Wait for `job`; when it died before the cell recorded how it ended, write error.json for it."""
    folder = Path(cell.config.out)
    try:
        job.result()
        return
    except Exception as err:  # the job itself failed: killed, out of memory, over its time, ...
        error = f"job {job.job_id} ended without finishing the cell: {' '.join(str(err).split())[:300]}"
    if finished_metrics(folder) is None and lock_holder(folder) is None and not (folder / "error.json").is_file():
        try:
            details = job.stderr() or ""
        except Exception:  # noqa: BLE001 - the log may be gone with the job's node
            details = ""
        atomic_write_json(folder / "error.json", {"error": error, "traceback": details[-4000:]})


def launch_grid(
    grid_file: str | Path,
    overrides: list[str],
    cluster: str = "auto",
    wait: bool = True,
    progress: bool = True,
    echo: Callable[[str], None] = tqdm.write,
) -> dict:
    """Submit the grid's unfinished cells as jobs and (with `wait`) wait for them; returns grid_summary.json's
    content (`submitted`: the cells whose jobs were not waited for)."""
    grid_file = Path(grid_file).resolve()
    grid, out = load_grid(grid_file, overrides)
    cells = expand(grid, out)
    summary: dict[str, list[str]] = {"finished": [], "skipped": [], "failed": [], "submitted": []}
    jobs: dict[str, Any] = {}
    for cell in cells:
        folder = Path(cell.config.out)
        if finished_metrics(folder) is not None:
            summary["skipped"].append(cell.name)
            continue
        job = live_job(folder)
        holder = lock_holder(folder) if job is None else None
        if job == "running" or holder is not None:  # another process's job or run holds the cell
            summary["skipped"].append(cell.name)
            echo(f"{cell.name}  skipped: in use by another run ({holder or 'job ' + read_job(folder)['job_id']})")
            continue
        if job is not None:
            echo(f"{cell.name}  job {job.job_id} still queued or running: waiting for it")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "error.json").unlink(missing_ok=True)  # a stale one would hide how this attempt ends
            executor = executor_for(folder / LOGS, cell.resources, name=f"{out.name}/{cell.name}", cluster=cluster)
            job = executor.submit(CellJob(str(grid_file), overrides, cell.name, os.getcwd()))
            record = _record_job(folder, job, executor.cluster)
            echo(f"{cell.name}  submitted: {record['cluster']} job {record['job_id']}")
        jobs[cell.name] = job
    if not wait:
        summary["submitted"] = list(jobs)
        return summary
    by_name = {cell.name: cell for cell in cells}
    for name, job in tqdm(jobs.items(), desc="grid", unit="cell", disable=not progress):
        cell = by_name[name]
        _job_outcome(cell, job)
        metrics = finished_metrics(Path(cell.config.out))
        if metrics is not None:
            summary["finished"].append(name)
            echo(summary_line(name, metrics))
        elif lock_holder(cell.config.out) is not None:
            summary["skipped"].append(name)
            echo(f"{name}  skipped: in use by another run ({lock_holder(cell.config.out)})")
        else:
            summary["failed"].append(name)
            echo(f"{name}  FAILED (see {Path(cell.config.out) / 'error.json'})")
    order = {cell.name: i for i, cell in enumerate(cells)}
    summary = {key: sorted(names, key=order.__getitem__) for key, names in summary.items() if key != "submitted"}
    atomic_write_json(out / "grid_summary.json", summary)
    return summary
