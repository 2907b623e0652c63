"""Entry point for `mitmdump -s addon/datakit.py --set datakit_config=flow.yaml`."""

from mitm_datakit.proxy.addon import Datakit

addons = [Datakit()]
