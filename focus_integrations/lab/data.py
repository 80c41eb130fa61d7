"""The lab's images: easy-vqa test images shipped with the package, with their colour and shape.

Built by ``scripts/build_lab_data.py`` at build time; the runtime reads only the copied PNGs and
``labels.json`` (it never imports ``easy_vqa``). ``val`` images are where the lab chooses alpha, ``test``
images are where it reports; the split is fixed by that script's seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from PIL import Image

from focus_integrations.errors import InvalidOptionError

SPLITS = ("val", "test")


def lab_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / "lab"


@dataclass(frozen=True)
class LabImage:
    """One easy-vqa image: a single shape of one colour on a light background."""

    id: int
    path: Path
    color: str
    shape: str
    split: str
    _pixels: list[Image.Image] = field(default_factory=list, repr=False, compare=False, hash=False)

    @property
    def image(self) -> Image.Image:
        """The RGB image (read once, then kept: the same object each time, so a run is cheap to repeat)."""
        if not self._pixels:
            with Image.open(self.path) as raw:
                self._pixels.append(raw.convert("RGB"))
        return self._pixels[0]

    def answer(self, attribute: str) -> str:
        if attribute == "color":
            return self.color
        if attribute == "shape":
            return self.shape
        raise InvalidOptionError(f"unknown attribute {attribute!r}; choose color or shape")


@cache
def _all_images() -> tuple[LabImage, ...]:
    root = lab_data_dir()
    labels = root / "labels.json"
    if not labels.is_file():
        raise FileNotFoundError(f"lab data missing at {root}; rebuild it with scripts/build_lab_data.py")
    meta = json.loads(labels.read_text())
    return tuple(
        LabImage(int(r["id"]), root / r["file"], r["color"], r["shape"], r["split"]) for r in meta["images"]
    )


def load_lab_images(split: str) -> list[LabImage]:
    """The shipped images of one split (``"val"`` or ``"test"``), in a fixed order."""
    if split not in SPLITS:
        raise InvalidOptionError(f"unknown lab split {split!r}; choose one of {SPLITS}")
    return [image for image in _all_images() if image.split == split]
