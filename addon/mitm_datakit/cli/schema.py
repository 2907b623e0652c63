"""`datakit schema`: print the JSON Schema of a config, generated from the node registry."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..schema import config_schema


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "schema",
        help="print the JSON Schema of a config (for editors)",
        description="Print the JSON Schema (draft 2020-12) of a Datakit config, generated from the node "
        "types this version knows. Point yaml-language-server at it for completion and checking in "
        "editors (docs/editor-schema.md).",
    )
    parser.add_argument("--output", "-o", metavar="PATH", help="write the schema to PATH instead of stdout")
    parser.set_defaults(func=schema_command)


def schema_command(args: argparse.Namespace) -> int:
    text = json.dumps(config_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
