"""The `datakit` command: check, draw, describe and run Datakit configs, and serve them.

datakit validate FILE...     every error of every file, with line and column
datakit graph FILE           the plan as Mermaid, Graphviz DOT, or an image
datakit schema               the JSON Schema of a config, for editors
datakit run FILE ...         run a config once against a request, without a proxy
datakit serve ...            run a config on a lean mitmproxy
datakit export FLOWS         recorded flows as a declarative file that mocks them
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import export, graph, run, schema, serve, validate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datakit",
        description="Kong Datakit configs on mitmproxy: check them, draw them, run them.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in (validate, graph, schema, run, serve, export):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [serve.NAME]:
        # The lean server parses its own arguments, `--help` included.
        return serve.serve(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        status: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`datakit schema | head`): not an error worth a traceback. Point stdout
        # at /dev/null so that the interpreter's final flush does not raise again (Python's own recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status
