"""`datakit validate FILE...`: every problem of every config file, with file, line and column.

Validation plans each config as the proxy would, without running it: secrets are never read (an
unset `{vault://env/...}` variable only fails a request that needs it) and nothing is called.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..config import load_config_file
from ..errors import ConfigError
from ..legacy.convert import to_current
from .configs import InvalidConfigFile, LocatedIssue, check_file

VALID, INVALID = 0, 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "validate",
        help="check config files and report every error",
        description="Check Datakit config files as the proxy would load them, and report every error of "
        "every file with its line and column, node, field and reason. Exit status: 0 when every file is "
        "valid, 1 otherwise.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="config files (YAML or JSON)")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default) or json, for CI tools"
    )
    parser.add_argument(
        "--compat",
        choices=("auto", "3.10", "3.11"),
        default="auto",
        help="the Datakit dialect to check against, as the proxy's datakit_compat option (default: auto)",
    )
    parser.add_argument(
        "--to-3.11",
        dest="to_current",
        action="store_true",
        help="print the Kong 3.11+ form of a 3.9/3.10 config, with a note for each change of meaning",
    )
    parser.set_defaults(func=validate_command)


def problems_of(path: str, compat: str = "auto") -> list[LocatedIssue]:
    try:
        check_file(path, compat)
    except InvalidConfigFile as e:
        return e.issues
    return []


def convert_command(paths: list[str]) -> int:
    """Print each legacy config in 3.11+ form; the notes go first, as YAML comments."""
    import yaml

    status = VALID
    for path in paths:
        try:
            converted, notes = to_current(load_config_file(path))
        except ConfigError as e:
            print(f"{path}: not a valid 3.9/3.10 config:\n{e}", file=sys.stderr)
            status = INVALID
            continue
        print(f"# {path} in Kong 3.11+ form (datakit validate --to-3.11)")
        for note in notes:
            print(f"# note: {note}")
        print(yaml.safe_dump(converted, sort_keys=False, allow_unicode=True), end="")
    return status


def validate_command(args: argparse.Namespace) -> int:
    if args.to_current:
        return convert_command(args.files)
    results = {path: problems_of(path, args.compat) for path in args.files}
    if args.format == "json":
        report = {
            "valid": not any(results.values()),
            "files": [
                {"file": path, "valid": not issues, "errors": [issue.as_json() for issue in issues]}
                for path, issues in results.items()
            ],
        }
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        for path, issues in results.items():
            if not issues:
                print(f"{path}: ok")
            for issue in issues:
                print(issue.text())
        invalid = [issues for issues in results.values() if issues]
        if invalid:
            errors = sum(len(issues) for issues in invalid)
            print(f"{_count(errors, 'error')} in {len(invalid)} of {_count(len(results), 'file')}")
    return INVALID if any(results.values()) else VALID


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
