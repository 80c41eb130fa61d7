"""The bundled catalog's labels are easy-vqa's own answers, and its images are easy-vqa's, byte for byte."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from focus_integrations.store import bundled_catalog_path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_catalog.py"


def test_catalog_matches_easy_vqa_ground_truth(tmp_path: Path, easy_vqa) -> None:
    spec = importlib.util.spec_from_file_location("build_catalog", SCRIPT)
    build_catalog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_catalog)

    folder = bundled_catalog_path()
    entries = json.loads((folder / "catalog.json").read_text())
    labels = build_catalog.image_labels()
    paths = easy_vqa.get_train_image_paths()
    originals = [e for e in entries if "derived_by" not in e]
    assert len({(e["colour"], e["shape"]) for e in originals}) == len(originals) == 24
    for entry in originals:
        source = entry["easy_vqa_train_id"]
        assert labels[source] == (entry["colour"], entry["shape"])
        assert (folder / entry["file"]).read_bytes() == Path(paths[source]).read_bytes()
        assert entry["caption"] == f"{entry['colour']} {entry['shape']} {entry['product']}"
        assert entry["product_id"] == entry["id"]
    # A few products have two or three photos (views, colour variants) made from their own image.
    by_product = {e["id"]: e for e in originals}
    photos: dict[str, int] = {}
    for entry in entries:
        photos[entry["product_id"]] = photos.get(entry["product_id"], 0) + 1
        product = by_product[entry["product_id"]]
        assert (
            entry["easy_vqa_train_id"] == product["easy_vqa_train_id"] and entry["price"] == product["price"]
        )
    assert sorted(n for n in photos.values() if n > 1) == [2, 3, 3]
    # The script is deterministic: rebuilding gives the committed files.
    build_catalog.build(tmp_path)
    for name in ("catalog.json", "LICENSE.md", *(e["file"] for e in entries)):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
