"""Errors raised by the image store and its embedders.

They derive from :class:`focus_integrations.errors.FocusError` and from the built-in type they refine, like the
core errors. They live here (not in the core ``errors`` module) because only the store raises them.
"""

from __future__ import annotations

from focus_integrations.errors import FocusError


class StoreError(FocusError):
    """Base class of the errors raised on purpose by :mod:`focus_integrations.store`."""


class EmbedderMismatchError(StoreError, ValueError):
    """A store was opened with an embedder other than the one that built it (name or dimension differ)."""


class EmbedderCapabilityError(StoreError, ValueError):
    """The embedder cannot embed this kind of input (an image given to a text-only embedder)."""


class InvalidCollectionNameError(StoreError, ValueError):
    """A Chroma collection name breaks Chroma's rules (3-512 chars of ``[a-zA-Z0-9._-]``, alphanumeric ends)."""


class DuplicateIdError(StoreError, ValueError):
    """The same record id appears more than once in one ingest call."""


class RecordNotFoundError(StoreError, KeyError):
    """An update or lookup named an id the store does not hold."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class StoreConnectionError(StoreError, ConnectionError):
    """The Chroma server named by a URL could not be reached."""


class StoreTimeoutError(StoreConnectionError, TimeoutError):
    """The Chroma server did not answer one call within the store's ``timeout`` (frozen, overloaded, stalled)."""


class StoreNotFoundError(StoreError, LookupError):
    """A store opened for reading only (``ImageStore(..., create=False)``) does not exist there."""


__all__ = [
    "StoreError",
    "EmbedderMismatchError",
    "EmbedderCapabilityError",
    "InvalidCollectionNameError",
    "DuplicateIdError",
    "RecordNotFoundError",
    "StoreConnectionError",
    "StoreTimeoutError",
    "StoreNotFoundError",
]
