"""Reading a config file and checking its fields; the graph rules live in `plan.py`."""

from .loader import load_config, load_config_file
from .schema import Field

__all__ = ["Field", "load_config", "load_config_file"]
