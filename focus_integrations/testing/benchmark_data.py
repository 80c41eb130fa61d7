"""Tiny synthetic look-alikes of the harness's benchmarks, in their REAL on-disk formats and column names.

For tests and benchmarks (needs the ``eval`` extra). Never real data (Winoground and Vinoground are gated):
coloured shapes drawn here. Each builder writes a folder laid out as the hub publishes it and returns its
path: ``winoground(root)``, ``vismin``, ``mantis``, ``muirbench``, ``mirb``, ``vinoground``, ``mmlongbench``.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = ("red", "green", "blue", "yellow", "teal", "brown", "black", "gray")
RGB = {
    "red": (220, 30, 30),
    "green": (30, 180, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 220, 30),
    "teal": (30, 160, 160),
    "brown": (130, 80, 30),
    "black": (10, 10, 10),
    "gray": (128, 128, 128),
}


def shape_image(color: str, size: int = 64, mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(image).ellipse((12, 12, size - 12, size - 12), fill=RGB[color])
    return image.convert(mode)


def _features(spec: dict[str, str]):
    from datasets import Features, List, Value
    from datasets import Image as HFImage

    kinds = {"image": HFImage(), "images": List(HFImage()), "strings": List(Value("string"))}
    return Features({k: kinds.get(v) or Value(v) for k, v in spec.items()})


def _parquet(root: Path, relative: str, data: dict, spec: dict[str, str]) -> Path:
    from datasets import Dataset

    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(data, features=_features(spec)).to_parquet(str(path))
    return root


def winoground(root: Path, n: int = 3) -> Path:
    rows = {
        k: []
        for k in (
            "id",
            "image_0",
            "image_1",
            "caption_0",
            "caption_1",
            "tag",
            "secondary_tag",
            "num_main_preds",
            "collapsed_tag",
        )
    }
    for i in range(n):
        a, b = COLORS[i % 8], COLORS[(i + 3) % 8]
        rows["id"].append(i)
        # an RGBA and a palette image: the protocol's .convert("RGB") must handle them
        rows["image_0"].append(shape_image(a, mode="RGBA"))
        rows["image_1"].append(shape_image(b, mode="P"))
        rows["caption_0"].append(f"a {a} circle")
        rows["caption_1"].append(f"a {b} circle")
        rows["tag"].append("Object")
        rows["secondary_tag"].append("")
        rows["num_main_preds"].append(1)
        rows["collapsed_tag"].append("Object" if i % 2 else "Relation")
    spec = {
        "id": "int32",
        "image_0": "image",
        "image_1": "image",
        "caption_0": "string",
        "caption_1": "string",
        "tag": "string",
        "secondary_tag": "string",
        "num_main_preds": "int32",
        "collapsed_tag": "string",
    }
    return _parquet(root, "data/test-00000-of-00001.parquet", rows, spec)


def vismin(root: Path, n: int = 4) -> Path:
    from datasets import Dataset, DatasetDict

    cats = ("object", "attribute", "relation", "counting")
    rows = {
        k: []
        for k in (
            "id",
            "image_0",
            "text_0",
            "image_1",
            "text_1",
            "text_question_0",
            "text_question_1",
            "image_question_0",
            "image_question_1",
            "category",
        )
    }
    for i in range(n):
        a, b = COLORS[i % 8], COLORS[(i + 2) % 8]
        rows["id"].append(100 + i)
        rows["image_0"].append(shape_image(a))
        rows["image_1"].append(shape_image(b))
        rows["text_0"].append(f"a {a} circle")
        rows["text_1"].append(f"a {b} circle")
        for k in ("text_question_0", "text_question_1", "image_question_0", "image_question_1"):
            rows[k].append("q")
        rows["category"].append(cats[i % 4])
    spec = {k: "string" for k in rows} | {"id": "int64", "image_0": "image", "image_1": "image"}
    DatasetDict({"test": Dataset.from_dict(rows, features=_features(spec))}).save_to_disk(str(root / "data"))
    return root


def mantis(root: Path) -> Path:
    rows = {
        "id": ["m0", "m1", "m2"],
        "question_type": ["multi-choice", "multi-choice", "short-answer"],
        "question": [
            "<image> <image> which image shows a red circle?",
            "What colour is the shape in <image>?",
            "What colour is the circle? <image>",
        ],
        "images": [
            [shape_image("red"), shape_image("blue")],
            [shape_image("green"), shape_image("teal")],
            [shape_image("yellow")],
        ],
        "options": [["(A) the first", "(B) the second"], ["red", "green", "blue", "teal", "gray"], []],
        "answer": ["(A)", "B", "yellow"],
        "category": ["color", "color", "color"],
        "data_source": ["synthetic"] * 3,
    }
    spec = {
        "id": "string",
        "question_type": "string",
        "question": "string",
        "images": "images",
        "options": "strings",
        "answer": "string",
        "category": "string",
        "data_source": "string",
    }
    return _parquet(root, "mantis_eval/test-00000-of-00001.parquet", rows, spec)


def muirbench(root: Path) -> Path:
    rows = {
        "idx": ["0", "1", "2"],
        "task": ["Counting", "Image-Text Matching", "Counting"],
        "image_relation": ["Independent"] * 3,
        "image_type": ["Synthetic"] * 3,
        "question": [
            "How many circles are red? <image> <image>",
            "Which image shows a blue circle? <image>",
            "What colour is the third image? <image> <image> <image>",
        ],
        "options": [
            ["0", "1", "2", "None of the choices provided"],
            ["<image>", "<image>", "<image>", "<image>"],
            ["red", "green", "blue", "gray", "teal"],
        ],
        "answer": ["B", "C", "E"],
        "image_list": [
            [shape_image("red"), shape_image("green")],
            [
                shape_image("red"),
                shape_image("green"),
                shape_image("blue"),
                shape_image("teal"),
                shape_image("gray"),
            ],
            [shape_image("red"), shape_image("green"), shape_image("teal")],
        ],
        "counterpart_idx": ["3", "4", "5"],
    }
    spec = {
        "idx": "string",
        "task": "string",
        "image_relation": "string",
        "image_type": "string",
        "question": "string",
        "options": "strings",
        "answer": "string",
        "image_list": "images",
        "counterpart_idx": "string",
    }
    return _parquet(root, "data/test-00000-of-00001.parquet", rows, spec)


def mirb(root: Path) -> Path:
    rows = {
        "question_id": ["q0", "q1", "q2"],
        "subset": ["count", "food", "analogy"],
        "questions": [
            "How many circles are there?",
            "Which dish? (A) soup (B) rice",
            "Red is to blue as green is to?",
        ],
        "answers": ["2", "(B)", "teal"],
        "image_list": [
            [shape_image("red"), shape_image("blue")],
            [shape_image("green"), shape_image("teal")],
            [shape_image("red"), shape_image("blue"), shape_image("green")],
        ],
    }
    spec = {
        "question_id": "string",
        "subset": "string",
        "questions": "string",
        "answers": "string",
        "image_list": "images",
    }
    return _parquet(root, "data/test-00000-of-00001.parquet", rows, spec)


def vinoground(root: Path, n: int = 2, frames_folder_for: tuple[int, ...] = (1,)) -> Path:
    """vinoground.csv + vinoground_videos/*.mp4 (PyAV-encoded), and one row as pre-extracted frames."""
    from focus_integrations.testing.videos import make_test_video

    root.mkdir(parents=True, exist_ok=True)
    lines = ["index,major,minor,pos_cap,neg_cap"]
    (root / "vinoground_videos").mkdir(exist_ok=True)
    for i in range(n):
        lines.append(
            f'{i},action,"contextual;viewpoint",a circle turns red then blue,a circle turns blue then red'
        )
        for side in ("pos", "neg"):
            if i in frames_folder_for:
                folder = root / "vinoground_frames" / f"{i}_{side}"
                folder.mkdir(parents=True, exist_ok=True)
                for k in range(8):
                    shape_image(COLORS[(k + (side == "neg")) % 8], size=32).save(folder / f"{k:03d}.png")
            else:
                make_test_video(root / "vinoground_videos" / f"{i}_{side}.mp4", num_frames=12, size=(32, 32))
    (root / "vinoground.csv").write_text("\n".join(lines) + "\n")
    return root


def mmlongbench(root: Path) -> Path:
    data, images = root / "mmlb_data", root / "mmlb_image"
    for folder in ("vrag", "NIAH", "ICL", "documentQA"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    for name, color in (
        ("vrag/e0.png", "red"),
        ("vh/a.png", "blue"),
        ("vh/b.png", "green"),
        ("icl/x.png", "teal"),
        ("icl/y.png", "gray"),
        ("docqa/doc1/page1.png", "yellow"),
    ):
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        shape_image(color).save(images / name)

    def jsonl(path: Path, rows: list[dict]) -> None:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    jsonl(
        data / "vrag/infoseek_K8_dep3.jsonl",
        [
            {
                "id": 0,
                "image": "vrag/e0.png",
                "question": "What colour is it?",
                "ctxs": [{"title": "Circle", "text": "The circle is red."}],
                "answer": ["red"],
            }
        ],
    )
    jsonl(
        data / "NIAH/vh_single_test_K8_dep6.jsonl",
        [
            {
                "id": k,
                "question": "Is there a blue circle?",
                "ctxs": ["vh/a.png", "vh/b.png", "vh/missing.png"],
                "answer": "yes" if k else "no",
            }
            for k in range(2)
        ],
    )
    (data / "ICL/cars196_K8.json").write_text(
        json.dumps(
            {
                "cars": {
                    "exemplar_list": [[[{"id": 0, "image": "icl/x.png"}, {"id": 1, "image": "icl/y.png"}]]],
                    "test_example": [{"id": 5, "image": "icl/x.png", "answer": 0}],
                }
            }
        )
    )
    jsonl(
        data / "documentQA/slidevqa_K8.jsonl",
        [
            {
                "id": 1,
                "doc_name": "doc1",
                "page_list": ["docqa/doc1/page1.png"],
                "question": "How many circles?",
                "answer": "1",
                "answer_format": "Integer",
            }
        ],
    )
    return root
