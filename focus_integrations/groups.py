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


# Metadata fields that say which retrieved images belong to one item, tried in this order by group_by="auto".
AUTO_GROUP_FIELDS: tuple[str, ...] = ("product_id", "document_id", "doc_id", "ref_doc_id")


def check_group_by(group_by: str | None) -> None:
    if group_by is not None and (not isinstance(group_by, str) or not group_by):
        raise InvalidOptionError(f"group_by must be 'auto', a metadata field name, or None, got {group_by!r}")


def group_field(metadatas: Sequence[Any], group_by: str | None = "auto") -> str | None:
    """The metadata field retrieved images are grouped by: ``group_by`` itself, or with ``"auto"`` the first
    of :data:`AUTO_GROUP_FIELDS` whose value at least two of the images share (None: no grouping applies)."""
    check_group_by(group_by)
    if group_by != "auto":
        return group_by
    for name in AUTO_GROUP_FIELDS:
        values = [m.get(name) for m in metadatas if isinstance(m, dict) and _is_key(m.get(name))]
        if len(values) != len(set(values)):
            return name
    return None


def metadata_group_keys(metadatas: Sequence[Any], group_by: str | None = "auto") -> list[Hashable | None]:
    """Per retrieved image, the group key its metadata gives (None: a group of its own).

    Images that share the value of the grouping field (:func:`group_field`) form one group; an image
    without that field, or alone with its value, stays ungrouped.
    """
    name = group_field(metadatas, group_by)
    if name is None:
        return [None] * len(metadatas)
    values = [m.get(name) if isinstance(m, dict) and _is_key(m.get(name)) else None for m in metadatas]
    shared = {v for v in values if v is not None and values.count(v) > 1}
    return [v if v in shared else None for v in values]


def _is_key(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value != ""
