"""Copy the easy-vqa test images the leakage lab needs into the package, with their ground truth.

Run at build time only (the ``easy-vqa`` wheel also installs a top-level ``test`` package that shadows the
standard library, so the runtime never imports it):

    python scripts/build_lab_data.py [--out focus_integrations/assets/lab] [--val-fraction 0.25] [--seed 0]

Each easy-vqa image shows one shape; its colour and shape are read from the dataset's own question/answer
pairs ("what color is the shape?" -> "red", "what shape is in the image?" -> "circle"). The 1,000 test images
are split once, by a seeded shuffle, into ``val`` (where the lab chooses alpha) and ``test`` (where it reports).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
from pathlib import Path

COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "focus_integrations" / "assets" / "lab"


# easy-vqa draws each shape in one PIL named colour on a light background.
_NAMED_RGB = {
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "teal": (0, 128, 128),
    "brown": (165, 42, 42),
    "yellow": (255, 255, 0),
}


def pixel_labels(path: str | Path) -> dict[str, str]:
    """Colour (nearest named colour of the shape's pixels) and shape (how much of its bounding box it fills)."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    background = np.median(rgb.reshape(-1, 3), axis=0)
    mask = np.abs(rgb - background).sum(-1) > 60
    values, counts = np.unique(rgb[mask], axis=0, return_counts=True)
    dominant = values[counts.argmax()]
    color = min(_NAMED_RGB, key=lambda name: float(np.abs(dominant - np.array(_NAMED_RGB[name])).sum()))
    rows, cols = np.nonzero(mask)
    fill = mask.sum() / ((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1))
    shape = "rectangle" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"
    return {"color": color, "shape": shape}


def read_easy_vqa(split: str) -> dict[int, dict[str, str]]:
    """{image id: {"color", "shape", "path"}} for easy-vqa's ``train`` or ``test`` split."""
    import easy_vqa

    if split == "train":
        questions, answers, ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    elif split == "test":
        questions, answers, ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    else:
        raise ValueError(f"unknown easy-vqa split {split!r}")
    labels: dict[int, dict[str, str]] = {int(i): {"path": str(p)} for i, p in paths.items()}
    # Candidates per image, narrowed by every question: open ones name the value, yes/no ones (possibly
    # negated: "is there not a red shape?") include or exclude one.
    possible = {i: {"color": set(COLORS), "shape": set(SHAPES)} for i in labels}
    for question, answer, image_id in zip(questions, answers, ids):
        words = re.findall(r"[a-z]+", question.lower())
        cand = possible[int(image_id)]
        if answer in COLORS:
            cand["color"] &= {answer}
        elif answer in SHAPES:
            cand["shape"] &= {answer}
        if answer in COLORS or answer in SHAPES:
            # "what color is the circle?" also names the shape.
            cand["shape"] &= {w for w in words if w in SHAPES} or set(SHAPES)
            continue
        negated = "not" in words or words[:2] == ["is", "no"]
        present = (answer == "yes") != negated
        for key, values in (("color", COLORS), ("shape", SHAPES)):
            named = [w for w in words if w in values]
            for value in named:
                cand[key] &= {value} if present else set(values) - {value}
    for image_id, cand in possible.items():
        for key in ("color", "shape"):
            if len(cand[key]) == 1:
                labels[image_id][key] = next(iter(cand[key]))
    # Images whose questions leave a value open get it from the pixels; the pixel reading is checked against
    # every image the questions do label, so a wrong reading fails the build instead of mislabelling.
    disagreements = 0
    for entry in labels.values():
        seen = pixel_labels(entry["path"])
        for key in ("color", "shape"):
            if key not in entry:
                entry[key] = seen[key]
            elif entry[key] != seen[key]:
                disagreements += 1
    if disagreements > 0.01 * len(labels):
        raise ValueError(f"pixel labels disagree with easy-vqa's answers on {disagreements} values")
    return labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    labels = read_easy_vqa("test")
    ids = sorted(labels)
    random.Random(args.seed).shuffle(ids)
    n_val = round(len(ids) * args.val_fraction)
    split_of = {image_id: ("val" if rank < n_val else "test") for rank, image_id in enumerate(ids)}

    image_dir = args.out / "images"
    if image_dir.exists():
        shutil.rmtree(image_dir)
    image_dir.mkdir(parents=True)
    records = []
    for image_id in sorted(labels):
        entry = labels[image_id]
        name = f"{image_id}.png"
        shutil.copyfile(entry["path"], image_dir / name)
        records.append(
            {
                "id": image_id,
                "file": f"images/{name}",
                "color": entry["color"],
                "shape": entry["shape"],
                "split": split_of[image_id],
            }
        )
    meta = {
        "source": "easy-vqa 1.0 (PyPI, MIT licence, https://github.com/vzhou842/easy-VQA), test split",
        "built_by": "scripts/build_lab_data.py",
        "seed": args.seed,
        "val_fraction": args.val_fraction,
        "colors": list(COLORS),
        "shapes": list(SHAPES),
        "images": records,
    }
    (args.out / "labels.json").write_text(json.dumps(meta, indent=1) + "\n")
    counts = {s: sum(r["split"] == s for r in records) for s in ("val", "test")}
    print(f"wrote {len(records)} images to {image_dir} ({counts})")


if __name__ == "__main__":
    main()
