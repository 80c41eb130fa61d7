"""Build the bundled toy product catalog (focus_integrations/assets/catalog/) from easy-vqa's train images.

One 64x64 PNG per (colour, shape) pair of easy-vqa (8 colours x 3 shapes = 24 images), each dressed as a
product: shape -> product kind, plus a deterministic price. Colour and shape come from easy-vqa's own
answers to "what color is the shape?" / "what shape is in the image?", so the catalog's labels are the data
set's ground truth, and the project's default model (trained on easy-vqa) can answer questions about it.

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

The product names, categories and prices in catalog.json are made up by scripts/build_catalog.py.
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
            items.append(
                {
                    "id": f"sku-{number:03d}",
                    "file": file_name,
                    "caption": f"{colour} {shape} {product}",
                    "colour": colour,
                    "shape": shape,
                    "product": product,
                    "category": category,
                    "price": round(rng.uniform(4, 40), 2),
                    "easy_vqa_train_id": source_id,
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
    print(f"wrote {len(items)} products to {args.out} ({size} bytes)")


if __name__ == "__main__":
    main()
