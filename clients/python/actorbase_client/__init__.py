"""asyncio client for actorbase: auth, REST, live queries that resume after any
disconnect, optimistic writes, an offline outbox (memory or SQLite), presence."""

from .client import Client
from .errors import ActorbaseError, NetworkError
from .live import LiveQuery
from .outbox import Entry, MemoryOutbox, OutboxStore, SQLiteOutbox
from .presence import Room
from .tokens import FileTokenStorage, MemoryTokenStorage, Tokens, TokenStorage

__version__ = "0.1.0"

__all__ = [
    "ActorbaseError",
    "Client",
    "Entry",
    "FileTokenStorage",
    "LiveQuery",
    "MemoryOutbox",
    "MemoryTokenStorage",
    "NetworkError",
    "OutboxStore",
    "Room",
    "SQLiteOutbox",
    "TokenStorage",
    "Tokens",
]
