"""Chroma clients for the store: embedded (``PersistentClient``) or a ``chroma run`` server (``HttpClient``).

Every call to a server has a deadline (``ImageStore(timeout=...)``, default :data:`DEFAULT_SERVER_TIMEOUT_S`):
a stalled server raises :class:`StoreTimeoutError`, a lost one :class:`StoreConnectionError`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chromadb
from chromadb.config import Settings

from focus_integrations.errors import InvalidOptionError
from focus_integrations.store.errors import (
    InvalidCollectionNameError,
    StoreConnectionError,
    StoreError,
    StoreTimeoutError,
)
from focus_integrations.store.records import _reason

DEFAULT_SERVER_TIMEOUT_S = 30.0  # deadline of each call to a Chroma server


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


OPEN_LOCK_FILE = ".focus-open.lock"
OPEN_LOCK_TIMEOUT_S = 120.0


@contextlib.contextmanager
def store_open_lock(path: Path, timeout: float = OPEN_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a store folder) while a process opens or creates the store in it.

    Waits at most ``timeout`` seconds for another process (then StoreError): a process frozen while opening
    never blocks the others forever. A no-op where ``fcntl`` does not exist (Windows).
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    if path.exists() and not path.is_dir():
        raise StoreError(f"store path {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    with open(path / OPEN_LOCK_FILE, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"another process has been opening the store at {path} for over {timeout} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _persistent_client(path: Path) -> Any:
    if path.exists() and not path.is_dir():
        raise StoreError(f"store path {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


def _http_client(url: str, timeout: float | None) -> Any:
    parsed = urllib.parse.urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidOptionError(f"chroma URL must look like http://host:port, got {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)

    def connect() -> Any:
        # HttpClient() already talks to the server (identity, tenant, database): it runs under the deadline too.
        client = chromadb.HttpClient(
            host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=chroma_settings()
        )
        _bound_sockets(client, timeout)
        client.heartbeat()
        return client

    try:
        _probe(url, parsed.scheme, parsed.hostname, port, timeout)
        client = call_with_deadline(connect, timeout=timeout, what="the connection", url=url)
    except StoreTimeoutError:
        raise
    except Exception as err:  # noqa: BLE001 - connection failures come in many types (httpx, ValueError, ...)
        raise StoreConnectionError(f"cannot reach the Chroma server at {url}: {_reason(err)}") from None
    return client


def _probe(url: str, scheme: str, host: str, port: int, timeout: float | None) -> None:
    """One bounded heartbeat before Chroma's client is built: a frozen server costs the deadline, and leaves no
    helper thread waiting on it (the client's constructor makes calls without a socket timeout)."""
    import httpx

    if timeout is None:
        return
    try:
        httpx.get(f"{scheme}://{host}:{port}/api/v2/heartbeat", timeout=timeout)
    except httpx.TimeoutException as err:
        raise StoreTimeoutError(
            f"the Chroma server at {url} did not answer the heartbeat within {timeout} s"
        ) from err


def check_timeout(timeout: Any) -> float | None:
    """``timeout`` as seconds (None: no deadline), or InvalidOptionError."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
        raise InvalidOptionError(
            f"timeout must be None or a positive finite number of seconds, got {timeout!r}"
        )
    return float(timeout)


def server_url(client: Any) -> str | None:
    """The URL of the server behind a Chroma client, or None for an in-process (embedded) client."""
    from chromadb.api.fastapi import FastAPI

    server = getattr(client, "_server", None)
    return str(server.get_api_url()) if isinstance(server, FastAPI) else None


def _bound_sockets(client: Any, timeout: float | None) -> None:
    """Give the client's httpx session per-operation timeouts (Chroma builds it with none), so the helper thread
    of a call abandoned at its deadline gives up on the socket soon after instead of waiting forever."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if timeout is not None and isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(
            timeout + 1.0
        )  # a little past the deadline: the deadline speaks first


def call_with_deadline(
    function: Callable[..., Any], *args: Any, timeout: float | None, what: str, url: str, **kwargs: Any
) -> Any:
    """``function(*args, **kwargs)``, returning or raising within ``timeout`` seconds (None: no bound).

    The call runs on a daemon thread the caller stops waiting for at the deadline (then StoreTimeoutError):
    a frozen server (SIGSTOP, a dead load balancer) accepts the connection and never answers, and no socket
    option turns that into a bounded wait on every path through Chroma's client.
    """
    if timeout is None:
        return function(*args, **kwargs)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = function(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            box["error"] = err

    worker = threading.Thread(target=run, name="focus-chroma-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise StoreTimeoutError(
            f"the Chroma server at {url} did not answer {what} within {timeout} s (timeout)"
        )
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _raise_if_connection_error(err: Exception, url: str | None) -> None:
    if url is None or isinstance(err, StoreConnectionError):
        return
    name = type(err).__name__
    # httpx's transport errors (ConnectError, ReadTimeout, RemoteProtocolError...) are not OSErrors.
    transport = type(err).__module__.startswith("httpx") and "Status" not in name
    if isinstance(err, TimeoutError) or "Timeout" in name:
        raise StoreTimeoutError(f"the Chroma server at {url} timed out: {_reason(err)}") from None
    if isinstance(err, ConnectionError) or "Connect" in name or transport:
        raise StoreConnectionError(f"lost the Chroma server at {url}: {_reason(err)}") from None


class _ServerGuard:
    """Proxy of a Chroma client or collection on a server: each method call has a deadline, and raises
    StoreTimeoutError / StoreConnectionError when the server stalls or is gone."""

    def __init__(self, wrapped: Any, url: str, timeout: float | None = None) -> None:
        self._wrapped = wrapped
        self._url = url
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._wrapped, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return call_with_deadline(
                    attribute, *args, timeout=self._timeout, what=f"{name}()", url=self._url, **kwargs
                )
            except Exception as err:
                _raise_if_connection_error(err, self._url)
                raise

        return guarded
