"""`compressions grid FILE` runs a grid of run folders; `compressions report FOLDER` tabulates and plots it."""

from __future__ import annotations

import argparse


def run_grid_command(args: argparse.Namespace) -> None:
    from compressions.experiments.grid import load_grid, run_grid
    from compressions.experiments.grid_report import write_report

    grid, out = load_grid(args.grid, args.overrides)
    summary = run_grid(grid, out)
    if summary["finished"] or summary["skipped"]:
        print(write_report(out))
    print(f"{len(summary['finished'])} run, {len(summary['skipped'])} skipped, {len(summary['failed'])} failed" + (
        f": {', '.join(summary['failed'])} (see their error.json)" if summary["failed"] else ""
    ))
    print(f"results: {out / 'results.md'}")


def run_report_command(args: argparse.Namespace) -> None:
    from compressions.experiments.grid_report import write_report

    print(write_report(args.folder))
    print(f"plot: {args.folder.rstrip('/')}/pareto.png")


def register_command(commands) -> None:
    grid = commands.add_parser("grid", help="run a grid of cells (configs/grids/*.yaml); finished cells are skipped")
    grid.add_argument("grid", help="grid YAML file")
    grid.add_argument("overrides", nargs="*", metavar="key=value", help="grid overrides, e.g. out=runs/other")
    grid.set_defaults(func=run_grid_command)
    report = commands.add_parser("report", help="results.md, results_summary.json and pareto.png of a grid folder")
    report.add_argument("folder", help="grid folder, e.g. runs/smoke")
    report.set_defaults(func=run_report_command)
