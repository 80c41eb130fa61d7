"""Build the bundled toy product catalog (focus_integrations/assets/catalog/) from easy-vqa's train images.

One 64x64 PNG per (colour, shape) pair of easy-vqa (8 colours x 3 shapes = 24 products), each dressed as a
product: shape -> product kind, plus a deterministic price. Colour and shape come from easy-vqa's own
answers to "what color is the shape?" / "what shape is in the image?", so the catalog's labels are the data
set's ground truth, and the project's default model (trained on easy-vqa) can answer questions about it.

A few products have more than one photo (``MORE_PHOTOS``): views (mirrored: the back; squeezed to half its
width: the side; turned a quarter: standing) or colour variants (the shape recoloured, its anti-aliased edge
blended the same way), all made from the product's own easy-vqa image. Every record carries ``product_id``;
the photos of one product share it (their record ids are ``<product id>-<view>``), so retrieval can group
them: FOCUS then separates products, not photos of the same product.

    python scripts/build_catalog.py [--out focus_integrations/assets/catalog]

Needs the package easy-vqa (MIT). Re-running produces identical files.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

COLOURS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
# What a coloured shape is sold as, and its category.
PRODUCTS = {
    "circle": ("pendant", "jewellery"),
    "rectangle": ("notebook", "stationery"),
    "triangle": ("pennant", "decor"),
}
SEED = 7
# Extra photos: (colour, shape) of the product -> [(view name, how the photo is made from its image)].
MORE_PHOTOS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("red", "circle"): [("back", "mirror"), ("side", "squeeze")],
    ("blue", "rectangle"): [("standing", "rotate")],
    ("green", "triangle"): [("yellow", "recolour:yellow"), ("teal", "recolour:teal")],
}

LICENSE_NOTE = """The images in this folder are taken unchanged from the easy-VQA data set
(PyPI package easy-vqa 1.0, train split, https://github.com/vzhou842/easy-VQA), under the MIT License:

MIT License

Copyright (c) 2019 Victor Zhou

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

The product names, categories and prices in catalog.json are made up by scripts/build_catalog.py, which
also makes the extra photos of a few products (files named *-<view>.png) from their easy-VQA images.
"""


def image_labels() -> dict[int, tuple[str, str]]:
    """easy-vqa train image id -> (colour, shape), from the data set's answers."""
    import easy_vqa

    questions, answers, image_ids = easy_vqa.get_train_questions()
    colours: dict[int, set[str]] = defaultdict(set)
    shapes: dict[int, set[str]] = defaultdict(set)
    for question, answer, image_id in zip(questions, answers, image_ids):
        if answer in COLOURS and "color" in question:
            colours[image_id].add(answer)
        elif answer in SHAPES and question.startswith("what"):
            shapes[image_id].add(answer)
    # Keep images whose colour and shape the questions pin down unambiguously.
    return {
        image_id: (next(iter(colours[image_id])), next(iter(shapes[image_id])))
        for image_id in sorted(colours.keys() & shapes.keys())
        if len(colours[image_id]) == 1 and len(shapes[image_id]) == 1
    }


def shape_colour(pixels, background) -> tuple[int, int, int]:
    """The flat colour of the shape: the commonest colour far from the background."""
    import numpy as np

    flat = pixels.reshape(-1, 3).astype(np.int32)
    far = flat[np.abs(flat - np.asarray(background)).sum(axis=1) > 200]
    colours, counts = np.unique(far, axis=0, return_counts=True)
    return tuple(int(v) for v in colours[int(np.argmax(counts))])


def background_colour(pixels) -> tuple[int, int, int]:
    import numpy as np

    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    return tuple(int(v) for v in colours[int(np.argmax(counts))])


def derived_photo(source: Path, how: str, colour_images: dict[str, Path]):
    """Another photo of the product in ``source``: a view of it, or the shape in another colour."""
    import numpy as np
    from PIL import Image

    image = Image.open(source).convert("RGB")
    pixels = np.asarray(image)
    background = background_colour(pixels)
    if how == "mirror":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if how == "rotate":
        return image.transpose(Image.Transpose.ROTATE_90)
    if how == "squeeze":  # seen from the side: half as wide, centred on the same background
        width, height = image.size
        narrow = image.resize((width // 2, height), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(narrow, (width // 4, 0))
        return canvas
    if how.startswith("recolour:"):
        old = np.asarray(shape_colour(pixels, background), dtype=np.float64)
        target = Image.open(colour_images[how.split(":", 1)[1]]).convert("RGB")
        new = np.asarray(shape_colour(np.asarray(target), background_colour(np.asarray(target))), np.float64)
        bg = np.asarray(background, dtype=np.float64)
        # Each pixel is bg + t * (old - bg) (t: coverage of the anti-aliased edge); keep t, swap the colour.
        t = ((pixels - bg) @ (old - bg)) / float((old - bg) @ (old - bg))
        t = np.clip(t, 0.0, 1.0)[..., None]
        return Image.fromarray(np.round(bg + t * (new - bg)).astype(np.uint8))
    raise ValueError(f"unknown photo recipe {how!r}")


def build(out: Path) -> list[dict]:
    import easy_vqa

    paths = easy_vqa.get_train_image_paths()
    first_of_pair: dict[tuple[str, str], int] = {}
    for image_id, pair in image_labels().items():
        first_of_pair.setdefault(pair, image_id)
    rng = random.Random(SEED)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    items = []
    number = 0
    for colour in COLOURS:
        for shape in SHAPES:
            if (colour, shape) not in first_of_pair:
                continue
            number += 1
            source_id = first_of_pair[(colour, shape)]
            product, category = PRODUCTS[shape]
            file_name = f"{colour}-{shape}-{product}.png"
            shutil.copyfile(paths[source_id], out / file_name)
            sku = f"sku-{number:03d}"
            entry = {
                "id": sku,
                "product_id": sku,
                "file": file_name,
                "caption": f"{colour} {shape} {product}",
                "colour": colour,
                "shape": shape,
                "product": product,
                "category": category,
                "price": round(rng.uniform(4, 40), 2),
                "easy_vqa_train_id": source_id,
            }
            items.append(entry)
            colour_images = {
                c: paths[first_of_pair[(c, shape)]] for c in COLOURS if (c, shape) in first_of_pair
            }
            for view, how in MORE_PHOTOS.get((colour, shape), []):
                photo = derived_photo(Path(paths[source_id]), how, colour_images)
                photo_file = f"{colour}-{shape}-{product}-{view}.png"
                photo.save(out / photo_file, format="PNG", optimize=True)
                variant = how.startswith("recolour:")
                items.append(
                    entry
                    | {
                        "id": f"{sku}-{view}",
                        "file": photo_file,
                        "caption": f"{view} {shape} {product}, colour variant of the {colour} one"
                        if variant
                        else f"{colour} {shape} {product}, {view} view",
                        "colour": view if variant else colour,
                        "photo": f"colour variant {view}" if variant else f"{view} view",
                        "derived_by": how,
                    }
                )
    (out / "catalog.json").write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
    (out / "LICENSE.md").write_text(LICENSE_NOTE, encoding="utf-8")
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "focus_integrations" / "assets" / "catalog"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    items = build(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir())
    products = len({item["product_id"] for item in items})
    print(f"wrote {products} products ({len(items)} photos) to {args.out} ({size} bytes)")


if __name__ == "__main__":
    main()
