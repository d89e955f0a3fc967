"""`onnx-approx` command line: thin; each subcommand lives in `onnx_approx.commands.<name>`.

A command module defines NAME, HELP, `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Order is the order shown in --help.
COMMAND_MODULES = [
    "run",
    "finetune",
    "analyze",
    "approximate",
    "export",
    "evaluate",
    "passes",
    "bench",
    "serve",
    "export_triton",
    "bench_op",
]


class CLIError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnx-approx",
        description="Turn a fine-tuned transformer into a task-specialized, approximated ONNX model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"onnx_approx.commands.{name}")
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


OWN_LOGGERS = ("onnx_approx", "graph_passes")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    # Our own progress at INFO; the libraries we drive (onnx_ir, onnxscript, ORT's quantizer) only warn,
    # unless --verbose asks for everything.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        return int(args._run(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        if args.verbose:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"onnx-approx {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
