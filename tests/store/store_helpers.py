"""Helpers shared by the store tests (imported by module name: tests/store is on sys.path via rootdir)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (230, 210, 30)}


def shape_image(colour: str, shape: str, size: int = 48) -> Image.Image:
    image = Image.new("RGB", (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    box = (size // 6, size // 6, size - size // 6, size - size // 6)
    if shape == "circle":
        draw.ellipse(box, fill=COLOURS[colour])
    elif shape == "triangle":
        draw.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=COLOURS[colour])
    else:
        draw.rectangle(box, fill=COLOURS[colour])
    return image


def write_shape(path: Path, colour: str, shape: str, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape_image(colour, shape, size).save(path)
    return path
