"""Image groups: the units FOCUS separates when one item has several images (a product's photos, a video).

FOCUS masks slot by slot: row k keeps image k clean. When several images belong to one item, the leakage to
suppress is between items, not between two photos of the same item. A request may therefore group its
images; with groups, the rule's N is the number of groups, row k keeps every image of group k clean and
noises the rest, and row 0 noises all. Ungrouped images are each their own group (the paper's rule).

Requests say it two ways: nested lists in the shorthand (``images=[[a1, a2], [b1]]``: a list is one group, a
bare image its own) and a ``"group"`` key on image content items (``{"type": "image", "image": ..., "group":
"sku-12"}``: items with equal keys form one group wherever they sit in the prompt; items without a key are
each their own group). Groups are numbered by their first image in prompt order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from focus_integrations.errors import InvalidOptionError

GROUP_KEY = "group"


class _Own:
    """A group key no other image shares (an image, or a video, that is a group of its own)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<own group>"


def own_group() -> Hashable:
    return _Own()


def group_key(item: dict[str, Any], index: int) -> Hashable:
    """The group key of a content item (``None`` or absent: a group of its own)."""
    key = item.get(GROUP_KEY)
    if key is None:
        return own_group()
    if isinstance(key, _Own):  # made by the shorthand (a nested list of images)
        return key
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise InvalidOptionError(
            f"message {index}: an image's 'group' must be a string or an integer, got {type(key).__name__}"
        )
    return key


def group_indices(keys: Sequence[Hashable]) -> tuple[int, ...]:
    """Group number per image: equal keys share one, numbered 0.. by first appearance."""
    numbers: dict[Hashable, int] = {}
    return tuple(numbers.setdefault(key, len(numbers)) for key in keys)


def is_ungrouped(groups: Sequence[int]) -> bool:
    return len(set(groups)) == len(groups)


def split_nested_images(images: Sequence[Any]) -> list[tuple[Any, Hashable]]:
    """``images=[a, [b1, b2], ...]`` -> ``[(a, key_a), (b1, key_b), (b2, key_b), ...]`` (a list is a group)."""
    out: list[tuple[Any, Hashable]] = []
    for position, entry in enumerate(images):
        if isinstance(entry, (list, tuple)):
            if not entry:
                raise InvalidOptionError(f"image group {position} is empty")
            key = own_group()
            for image in entry:
                if isinstance(image, (list, tuple)):
                    raise InvalidOptionError(f"image group {position}: groups cannot be nested further")
                out.append((image, key))
        else:
            out.append((entry, own_group()))
    return out
