"""The actorbase process: command line, ordered start and stop, wire errors."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
