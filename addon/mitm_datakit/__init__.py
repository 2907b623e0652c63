"""mitm-datakit: Kong Gateway's Datakit data-flow engine as a mitmproxy addon."""

__version__ = "0.1.0"
