"""Chroma clients for the store: embedded (``PersistentClient``) or a ``chroma run`` server (``HttpClient``),
and the translation of a lost server into :class:`StoreConnectionError`.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

import chromadb
from chromadb.config import Settings

from focus_integrations.errors import InvalidOptionError
from focus_integrations.store.errors import InvalidCollectionNameError, StoreConnectionError, StoreError
from focus_integrations.store.records import _reason


def chroma_settings() -> Settings:
    """Settings for a new Chroma client: telemetry off, everything else Chroma's default.

    A fresh object per client on purpose: ``PersistentClient`` / ``HttpClient`` write the path or port INTO the
    settings object they get, so one shared object would be rewritten by every new client (and an
    ``HttpClient`` then refuses a second port). Chroma compares settings by value when it reuses a cached
    client for a path, so equal fresh objects are accepted.
    """
    return Settings(anonymized_telemetry=False)


#: Kept for code written against the first version of this module. Prefer :func:`chroma_settings`: Chroma's
#: client constructors mutate the object they get (path, port, persistence), so sharing one is fragile.
CHROMA_SETTINGS = chroma_settings()


_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")


def default_store_path() -> Path:
    """``$FOCUS_STORE_PATH``, else ``~/.cache/focus_integrations/store``."""
    env = os.environ.get("FOCUS_STORE_PATH")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "focus_integrations" / "store"


def validate_collection_name(name: str) -> str:
    """Return ``name`` if Chroma accepts it, else raise :class:`InvalidCollectionNameError` saying why."""
    if not isinstance(name, str):
        raise InvalidCollectionNameError(f"collection name must be a string, got {type(name).__name__}")
    if not _COLLECTION_NAME.fullmatch(name) or ".." in name or _IPV4.fullmatch(name):
        raise InvalidCollectionNameError(
            f"invalid collection name {name!r}: use 3-512 characters from [a-zA-Z0-9._-], starting and ending "
            "with a letter or digit, no '..', not an IPv4 address"
        )
    return name


def _persistent_client(path: Path) -> Any:
    if path.exists() and not path.is_dir():
        raise StoreError(f"store path {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


def _http_client(url: str) -> Any:
    parsed = urllib.parse.urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidOptionError(f"chroma URL must look like http://host:port, got {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=chroma_settings()
        )
        client.heartbeat()
    except Exception as err:  # noqa: BLE001 - connection failures come in many types (httpx, ValueError, ...)
        raise StoreConnectionError(f"cannot reach the Chroma server at {url}: {_reason(err)}") from None
    return client


def _raise_if_connection_error(err: Exception, url: str | None) -> None:
    if url is None:
        return
    name = type(err).__name__
    # httpx's transport errors (ConnectError, ReadTimeout, RemoteProtocolError...) are not OSErrors.
    transport = type(err).__module__.startswith("httpx") and "Status" not in name
    if (
        isinstance(err, (ConnectionError, TimeoutError))
        or "Connect" in name
        or "Timeout" in name
        or transport
    ):
        raise StoreConnectionError(f"lost the Chroma server at {url}: {_reason(err)}") from None


class _ServerGuard:
    """Proxy of a collection on a Chroma server: its methods raise StoreConnectionError when the server is gone."""

    def __init__(self, collection: Any, url: str) -> None:
        self._wrapped = collection
        self._url = url

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._wrapped, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except Exception as err:
                _raise_if_connection_error(err, self._url)
                raise

        return guarded
