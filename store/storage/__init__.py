"""File storage backends (local disk, S3) behind one interface, `base.Blobs`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from config.settings import Settings
from store.storage.base import Blobs

if TYPE_CHECKING:
    from store.signing_keys import SigningKeys


def open_blobs(settings: Settings, keys: SigningKeys) -> Blobs:
    """The backend STORAGE_URL names; local storage signs its URLs with the newest
    of `keys.url`. Blocks (creates directories, or checks the bucket answers); raises
    ConfigError if it cannot be used."""
    url = settings.storage_url
    if url.startswith("s3://"):
        from store.storage.s3 import S3Blobs

        parts = urlsplit(url)
        return S3Blobs(parts.netloc, parts.path, settings.s3_endpoint_url)
    from store.storage.local import LocalBlobs

    return LocalBlobs(Path(url.removeprefix("file://")), keys)
