"""The version of Switchboard, written into every run's manifest."""

__version__ = "0.1.0"
