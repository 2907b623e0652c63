"""`datakit serve`: run a config on the lean proxy (`proxy/lean.py`), which reads its own arguments."""

from __future__ import annotations

import argparse

NAME = "serve"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Listed for `datakit --help` only: main() hands everything after `serve` to the lean server,
    # whose own parser answers `datakit serve --help`.
    commands.add_parser(
        NAME,
        help="run a config on a lean mitmproxy (see `datakit serve --help`)",
        add_help=False,
    )


def serve(argv: list[str]) -> int:
    # Imported here: it loads mitmproxy's proxy machinery, which no other command needs.
    from ..proxy.lean import serve as lean_serve

    return lean_serve(argv)
