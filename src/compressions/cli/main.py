"""`compressions` command line: prompt and context compression for decoder LLMs.

Each concern registers its own leaf commands (a module with `register(groups)`) under the groups
below, or top-level commands (`register_command(commands)`); each leaf is a parser plus a `run(args)` function.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tqdm.std import tqdm
from transformers.utils import logging as transformers_logging

from compressions.cli import diagnose, gist, grid, reader, squad, train
from compressions.errors import ArgumentError, CompressionsError

GROUPS = {
    "eval": "evaluate a method",
    "baselines": "run methods x budgets",
    "diagnose": "data diagnostics",
    "train": "train models and compressors",
    "gist": "gist tokens (Mu et al.): train, evaluate",
}
MODULES = (squad, diagnose, train, reader, gist)
COMMANDS = (grid,)  # top-level commands: `compressions grid FILE`, `compressions report FOLDER`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compressions", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)
    groups = {
        name: commands.add_parser(name, help=help).add_subparsers(dest="task", required=True)
        for name, help in GROUPS.items()
    }
    for module in MODULES:
        module.register(groups)
    for module in COMMANDS:
        module.register_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    # the terminal's handler has its own level: a run folder lowers the package logger to INFO for its run.log
    terminal = logging.StreamHandler()
    terminal.setLevel(level)
    logging.basicConfig(level=level, format="%(levelname)s %(message)s", handlers=[terminal])
    if not args.verbose:
        transformers_logging.disable_progress_bar()  # its weight-loading bar, on every model load
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # offline retries are reported as one error line
    try:
        args.func(args)
    except ArgumentError as err:  # named by the flag that sets it (a dotted config key stays as typed after the flags)
        flag = err.argument if "." in err.argument else f"--{err.argument.replace('_', '-')}"
        print(f"error: {flag}: {err.problem}", file=sys.stderr)
        return 2
    except CompressionsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; the run folder has marked itself interrupted
        for bar in list(tqdm._instances):  # end the open progress bars' lines, so the message has its own
            bar.close()
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
