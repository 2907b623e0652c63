"""`datakit graph FILE`: draw a config's plan as Mermaid or Graphviz DOT, or as an image through Graphviz."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from ..graph import to_dot, to_mermaid
from .configs import InvalidConfigFile, plan_file

DRAWN, RENDER_FAILED, BAD_CONFIG = 0, 1, 2
IMAGE_FORMATS = ("svg", "png", "pdf")
RENDER_TIMEOUT = 60  # seconds; a 64-node graph takes Graphviz well under one


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "graph",
        help="draw a config's plan (Mermaid, DOT, or an image)",
        description="Draw the plan of a config: nodes by type, edges labelled `source field → target "
        "field`, implicit nodes where they are used, the access and response phases as clusters, and a "
        "branch's then/else lists as dashed edges. Exit status: 0 drawn, 1 the image could not be "
        "rendered, 2 the config is invalid.",
    )
    parser.add_argument("file", metavar="FILE", help="config file (YAML or JSON)")
    parser.add_argument(
        "--format", choices=("mermaid", "dot"), help="text to produce: mermaid (default) or Graphviz dot"
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="write to PATH instead of stdout; a .svg, .png or .pdf PATH is rendered by Graphviz's `dot`",
    )
    parser.set_defaults(func=graph_command)


def graph_command(args: argparse.Namespace) -> int:
    try:
        plan = plan_file(args.file)
    except InvalidConfigFile as e:
        print(e, file=sys.stderr)
        return BAD_CONFIG
    image_format = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    if image_format in IMAGE_FORMATS:
        if args.format == "mermaid":
            print(
                "datakit graph: images are drawn by Graphviz from DOT; drop --format mermaid", file=sys.stderr
            )
            return RENDER_FAILED
        return _render(to_dot(plan), image_format, args.output)
    text = to_dot(plan) if args.format == "dot" else to_mermaid(plan)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return DRAWN


def _render(dot_text: str, image_format: str, output: str) -> int:
    dot = shutil.which("dot")
    if dot is None:
        print(
            f"datakit graph: cannot render {output}: Graphviz's `dot` command is not installed "
            "(Debian: apt-get install graphviz); `--format dot` or `--format mermaid` print the text instead",
            file=sys.stderr,
        )
        return RENDER_FAILED
    result = subprocess.run(
        [dot, f"-T{image_format}", "-o", output],
        input=dot_text,
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        print(f"datakit graph: dot failed to render {output}:\n{result.stderr.strip()}", file=sys.stderr)
        return RENDER_FAILED
    return DRAWN
