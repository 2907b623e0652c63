"""`datakit serve FILE`: the Datakit addon on a mitmproxy Master with only the addons a gateway needs.

mitmdump loads about 36 addons, and mitmproxy walks every one of them for every hook of every flow, whether
the addon implements the hook or not: on the reference machine that costs about 14 µs per addon per request,
and a Master with a handful of addons proxied about 1.7 times as many requests per second
(shared/perf-baseline.md, docs/performance.md). This Master keeps:

- core, proxyserver, next_layer, tlsconfig: the proxy itself (option checks, listeners, protocol layers, TLS);
- block: `block_global` / `block_private`, so a server listening on a public address is as closed as mitmdump;
- disable_h2c: strips h2c upgrades, which mitmproxy cannot proxy;
- update_alt_svc: in reverse mode, keeps `Alt-Svc` from sending clients around the proxy;
- errorcheck and termlog: start-up errors (an invalid Datakit config) are printed and exit non-zero;
- Datakit.

What it leaves out: `-s` scripts, flow dumping (`flow_detail`), saving flows, replay, map/modify rules, proxy
authentication, DNS mode. Use mitmdump with `-s addon/datakit.py` for those.

    python -m mitm_datakit.proxy.lean flow.yaml --mode reverse:http://127.0.0.1:8080 --listen-port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from mitmproxy import exceptions, master, options, optmanager
from mitmproxy.addons import block, core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig, update_alt_svc

from .addon import Datakit

PROG = "datakit serve"


class LeanMaster(master.Master):
    """A mitmproxy Master running Datakit with the minimal addon chain described above."""

    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts, with_termlog=True)
        # Datakit sits where mitmdump's script loader puts it: after disable_h2c, before next_layer.
        self.addons.add(
            core.Core(),
            block.Block(),
            disable_h2c.DisableH2C(),
            proxyserver.Proxyserver(),
            Datakit(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            update_alt_svc.UpdateAltSvc(),
            errorcheck.ErrorCheck(),
        )


def make_parser(opts: options.Options) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a Datakit config on a lean mitmproxy (the proxy options mean what they mean for mitmdump).",
    )
    parser.add_argument(
        "file", nargs="?", metavar="FILE", help="the Datakit config (YAML or JSON); same as --set datakit_config=FILE"
    )
    opts.make_parser(parser, "mode", short="m")
    opts.make_parser(parser, "listen_host", metavar="HOST")
    opts.make_parser(parser, "listen_port", metavar="PORT", short="p")
    parser.add_argument(
        "--set",
        type=str,
        dest="setoptions",
        default=[],
        action="append",
        metavar="option[=value]",
        help="Set a mitmproxy or Datakit option, as with mitmdump (for example --set datakit_max_body=1048576).",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="Log errors only.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log everything, down to debug.")
    return parser


def _apply_arguments(opts: options.Options, args: argparse.Namespace) -> None:
    """Command-line flags win over --set and the confdir's config.yaml, as in mitmdump."""
    opts.set(*args.setoptions, defer=True)
    optmanager.load_paths(
        opts, os.path.join(opts.confdir, "config.yaml"), os.path.join(opts.confdir, "config.yml")
    )
    updates = {key: value for key, value in vars(args).items() if key in opts and value is not None}
    if args.file is not None:
        updates["datakit_config"] = args.file
    if args.quiet:
        updates["termlog_verbosity"] = "error"
    if args.verbose:
        updates["termlog_verbosity"] = "debug"
    opts.update(**updates)


async def _run(argv: list[str]) -> int:
    # Until the options say how verbose to be, keep every record (the config's load message among them).
    logging.getLogger().setLevel(logging.DEBUG)
    opts = options.Options()
    lean = LeanMaster(opts)
    args = make_parser(opts).parse_args(argv)
    try:
        _apply_arguments(opts, args)
    except exceptions.OptionsError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    if opts.deferred:
        # mitmdump keeps unknown options for scripts loaded later; here nothing can claim them.
        logging.warning("%s: unknown option(s) ignored: %s", PROG, ", ".join(sorted(opts.deferred)))
    # mitmdump sets the root logger to DEBUG and lets termlog filter: every debug record of mitmproxy and of the
    # libraries is then built and dispatched for nothing. Build only what termlog will print.
    logging.getLogger().setLevel(opts.termlog_verbosity.upper())

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lean.shutdown)
    # A client that goes away mid-write must not kill the server (mitmproxy issue 6744).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await lean.run()
    # asyncio.run cancels the connections still open; Python 3.11's asyncio.streams then calls exception() on
    # each cancelled task and logs the CancelledError with a traceback (fixed in 3.12). That is noise.
    loop.set_exception_handler(_ignore_cancelled)
    return 0


def _ignore_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


def serve(argv: list[str] | None = None) -> int:
    """Run the lean server until SIGINT/SIGTERM; returns the exit status (1 on start-up errors)."""
    # As in mitmdump: library loggers that are chatty at DEBUG stay quiet even with -v.
    for name in ("asyncio", "hpack", "quic", "tornado"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return asyncio.run(_run(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # argparse on bad arguments; ErrorCheck when the start-up logged an error
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(serve())
