"""Every stage and test runs offline: the hub is never contacted, and a missing hub id fails at once."""

import os

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def force_offline() -> None:
    """Set the Hugging Face offline switches unless the user explicitly set them to something else.

    Without them a hub id retries for about 46 s before failing; with them it fails at once.
    """
    for var in OFFLINE_VARS:
        os.environ.setdefault(var, "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
