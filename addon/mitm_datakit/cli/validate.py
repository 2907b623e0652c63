"""`datakit validate FILE...`: every problem of every config file, with file, line and column.

Validation plans each config as the proxy would, without running it: secrets are never read (an
unset `{vault://env/...}` variable only fails a request that needs it) and nothing is called.
"""

from __future__ import annotations

import argparse
import json
import sys

from .configs import InvalidConfigFile, LocatedIssue, plan_file

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
    parser.set_defaults(func=validate_command)


def problems_of(path: str) -> list[LocatedIssue]:
    try:
        plan_file(path)
    except InvalidConfigFile as e:
        return e.issues
    return []


def validate_command(args: argparse.Namespace) -> int:
    results = {path: problems_of(path) for path in args.files}
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
