"""`compressions grid FILE` runs a grid of run folders; `compressions report FOLDER` tabulates and plots it."""

from __future__ import annotations

import argparse
from pathlib import Path

from compressions.errors import ConfigError, DataError


def run_grid_command(args: argparse.Namespace) -> None:
    from compressions.experiments.grid import load_grid, run_grid, run_queue, visible_devices
    from compressions.experiments.grid_report import write_report

    grid, out = load_grid(args.grid, args.overrides)
    existing = next(p for p in (out, *out.parents) if p.exists())  # nothing is made before the cells are checked
    if not existing.is_dir():  # an `out` that is a file, or lies under one: one line before any cell starts
        raise ConfigError(f"out: cannot use {out} as the grid's folder: {existing} is a file")
    devices = visible_devices() if args.devices == ["auto"] else args.devices
    if args.only and not devices:  # one cell of a queue (its bars go to its worker.log) or cells run by hand: no grid summary or report
        run_grid(grid, out, only=args.only)
        return
    if args.launcher == "submitit":
        if args.devices:
            raise ConfigError("--devices is the local queue's; with --launcher submitit each cell asks for its resources.gpus")
        from compressions.experiments.cluster import launch_grid

        summary = launch_grid(args.grid, args.overrides, cluster=args.cluster, wait=not args.no_wait)
        if args.no_wait:
            print(f"{len(summary['submitted'])} submitted, {len(summary['skipped'])} skipped; "
                  f"rerun the same command to wait for them, or `compressions report {out}` for the cells done")  # fmt: skip
            return
    else:
        summary = run_queue(args.grid, args.overrides, devices, only=args.only) if devices else run_grid(grid, out)
    if summary["finished"] or summary["skipped"]:
        print(write_report(out))
    print(f"{len(summary['finished'])} run, {len(summary['skipped'])} skipped, {len(summary['failed'])} failed" + (
        f": {', '.join(summary['failed'])} (see their error.json)" if summary["failed"] else ""
    ))
    print(f"results: {out / 'results.md'}")


def run_report_command(args: argparse.Namespace) -> None:
    from compressions.experiments.grid_report import unreadable_cells, write_report

    print(write_report(args.folder))
    print(f"plot: {args.folder.rstrip('/')}/pareto.png")
    unreadable = unreadable_cells(Path(args.folder))
    if unreadable:  # the report above holds the cells that could be read; the command still fails
        raise DataError(f"{len(unreadable)} cell(s) of {args.folder} left out: {', '.join(unreadable)}")


def register_command(commands) -> None:
    grid = commands.add_parser("grid", help="run a grid of cells (configs/grids/*.yaml); finished cells are skipped")
    grid.add_argument("grid", help="grid YAML file")
    grid.add_argument("overrides", nargs="*", metavar="key=value", help="grid overrides, e.g. out=runs/other")
    grid.add_argument(
        "--devices", nargs="+", default=[], metavar="ID",
        help="run cells in parallel, one child process per device (CUDA_VISIBLE_DEVICES ids), e.g. --devices 0 1 2 3; "
        "'auto': every visible GPU; default: one after another in this process",
    )  # fmt: skip
    grid.add_argument(
        "--launcher", choices=("process", "submitit"), default="process",
        help="process: cells in this process (or the --devices queue); submitit: each cell a job (Slurm when there is one, "
        "else local processes), with the grid file's resources; job ids in <cell>/job.json",
    )  # fmt: skip
    grid.add_argument(
        "--cluster", choices=("auto", "slurm", "local", "debug"), default="auto",
        help="submitit's executor: auto (Slurm when sbatch is found, else local processes, all cells at once), "
        "slurm, local, or debug (in this process, for debugging)",
    )  # fmt: skip
    grid.add_argument("--no-wait", action="store_true", help="submitit: submit and return; the report reads the cells later")
    grid.add_argument("--only", nargs="+", metavar="CELL", help="run only these cells (what each queue worker runs); with --devices, a queue of just these")
    grid.set_defaults(func=run_grid_command)
    report = commands.add_parser("report", help="results.md, results_summary.json and pareto.png of a grid folder")
    report.add_argument("folder", help="grid folder, e.g. runs/smoke")
    report.set_defaults(func=run_report_command)
