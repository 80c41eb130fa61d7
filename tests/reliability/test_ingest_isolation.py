"""One bad item never costs the good ones: every ingest step after a file is found is isolated per item; two
processes creating the same new store at once both succeed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reliability_helpers import write_shape

pytest.importorskip("chromadb")

from focus_integrations.store import Embedder, ImageItem, ImageStore  # noqa: E402

GOOD = ("red_circle.png", "blue_square.png", "green_circle.png")


def _good_folder(folder: Path, prefix: str = "") -> Path:
    for name in GOOD:
        colour, shape = name[:-4].split("_")
        write_shape(folder / f"{prefix}{name}", colour, shape)
    return folder


def _stored(store: ImageStore) -> set[str]:
    return {hit.id for hit in store.get()}


def test_a_file_name_that_is_not_utf8_fails_alone(tmp_path: Path, minilm) -> None:
    folder = _good_folder(tmp_path / "images")
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # latin-1 bytes: not a UTF-8 name
    with open(bad, "wb") as handle:
        handle.write((folder / "red_circle.png").read_bytes())
    store = ImageStore(tmp_path / "store", embedder=minilm)
    report = store.add_folder(folder)
    assert _stored(store) == set(GOOD)
    assert len(report.failed) == 1 and "not valid UTF-8" in report.failed[0][1]
    assert os.fsencode(report.failed[0][0]) == bad  # the report names the real file


def test_a_catalog_caption_with_a_lone_surrogate_fails_alone(tmp_path: Path, minilm) -> None:
    folder = _good_folder(tmp_path / "images")
    write_shape(folder / "odd.png", "red", "square")
    catalog = [
        {"file": "odd.png", "caption": "broken \ud800 text"},
        {"file": "red_circle.png", "caption": "ok"},
    ]
    (folder / "catalog.json").write_text(json.dumps(catalog))  # json escapes it: valid JSON, invalid Unicode
    store = ImageStore(tmp_path / "store", embedder=minilm)
    report = store.add_folder(folder)
    assert _stored(store) == set(GOOD)
    assert [Path(path).name for path, _ in report.failed] == ["odd.png"]
    assert "caption is not valid UTF-8" in report.failed[0][1]
    assert store.get(["red_circle.png"])[0].caption == "ok"


def test_metadata_and_captioner_failures_cost_only_their_item(tmp_path: Path, minilm) -> None:
    folder = _good_folder(tmp_path / "images")
    for name in ("raises.png", "surrogate_meta.png", "bad_key.png"):
        write_shape(folder / name, "green", "square")

    def metadata_fn(path: Path) -> dict:
        if path.name == "raises.png":
            raise RuntimeError("boom")
        if path.name == "surrogate_meta.png":
            return {"brand": "x\udcff"}
        if path.name == "bad_key.png":
            return {"focus_reserved": 1}
        return {"brand": "acme"}

    store = ImageStore(tmp_path / "store", embedder=minilm)
    report = store.add_folder(folder, metadata_fn=metadata_fn, captioner=lambda image: "\ud800")
    assert _stored(store) == set(GOOD)
    assert sorted(Path(path).name for path, _ in report.failed) == [
        "bad_key.png",
        "raises.png",
        "surrogate_meta.png",
    ]
    assert any("captioner failed" in warning for warning in report.warnings)  # fell back to the file name
    assert store.get(["red_circle.png"])[0].caption == "red circle"


def test_a_malformed_sidecar_fails_its_folder_only(tmp_path: Path, minilm) -> None:
    root = tmp_path / "catalog"
    _good_folder(root / "good")
    write_shape(root / "bad" / "x.png", "red", "circle")
    (root / "bad" / "catalog.json").write_text("{not json")
    (root / "latin1").mkdir()
    write_shape(root / "latin1" / "y.png", "blue", "circle")
    (root / "latin1" / "catalog.json").write_bytes(b'[{"file": "y.png", "caption": "caf\xe9"}]')
    store = ImageStore(tmp_path / "store", embedder=minilm)
    report = store.add_folder(root)
    assert _stored(store) == {f"good/{name}" for name in GOOD}
    reasons = {Path(path).name: reason for path, reason in report.failed}
    assert set(reasons) == {"x.png", "y.png"} and "invalid JSON" in reasons["x.png"]
    assert "cannot read" in reasons["y.png"]


class _PoisonedEmbedder(Embedder):
    """MiniLM, except that it raises on one text (as a tokenizer or a remote embedding service may)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.spec, self.name, self.dim = inner, inner.spec, inner.name, inner.dim
        self.modalities = inner.modalities

    def embed_texts(self, texts):
        if any("poison" in text for text in texts):
            raise RuntimeError("the embedding service refused this batch")
        return self.inner.embed_texts(texts)


def test_an_embedding_failure_costs_only_its_item(tmp_path: Path, minilm) -> None:
    store = ImageStore(tmp_path / "store", embedder=_PoisonedEmbedder(minilm), media_dir=tmp_path / "media")
    items = [
        ImageItem(write_shape(tmp_path / f"{n}.png", "red", "circle", 30 + i), caption=n)
        for i, n in enumerate(GOOD)
    ]
    items.insert(1, ImageItem(write_shape(tmp_path / "p.png", "blue", "circle"), caption="poison pill"))
    report = store.add_images(items)
    assert len(report.added) == 3 and [reason for _, reason in report.failed] == [
        "could not be embedded or written: RuntimeError: the embedding service refused this batch"
    ]
    assert store.count() == 3


def test_bad_items_in_add_images_cost_only_themselves(tmp_path: Path, minilm) -> None:
    store = ImageStore(tmp_path / "store", embedder=minilm, media_dir=tmp_path / "media")
    good = [write_shape(tmp_path / name, "red", "circle", 30 + i) for i, name in enumerate(GOOD)]
    items = [
        good[0],
        42,  # not an image source
        {"caption": "no image key"},
        ImageItem(b"\x89PNG\r\n\x1a\n garbage", id="corrupt"),
        ImageItem(good[1], id=""),
        ImageItem(good[1], caption=7),  # a caption that is not a string
        good[1],
        ImageItem(good[2], id="ok\udc80"),
        good[2],
    ]
    report = store.add_images(items)
    assert len(report.added) == 3 and len(report.failed) == 6, report.failed
    assert store.count() == 3


RACE = textwrap.dedent(
    """
    import os, sys, time
    from focus_integrations.store.commands import main

    print("ready", flush=True)
    while not os.path.exists(sys.argv[3]):  # all processes past their imports: they open the store together
        time.sleep(0.001)
    sys.exit(main(["index", sys.argv[1], "--store", sys.argv[2], "--no-progress"]))
    """
)


@pytest.mark.slow
def test_processes_creating_the_same_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    folders = [_good_folder(tmp_path / f"images-{n}", prefix=f"{n}-") for n in range(3)]
    store_path, go = tmp_path / "store", tmp_path / "go"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(folder), str(store_path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for folder in folders
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [child.communicate(timeout=240) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert "added 3" in out, out
    assert ImageStore(store_path).count() == 9


def test_query_text_with_a_lone_surrogate_is_an_invalid_option(tmp_path: Path, minilm) -> None:
    from focus_integrations.errors import InvalidOptionError

    store = ImageStore(tmp_path / "store", embedder=minilm)
    store.add_folder(_good_folder(tmp_path / "images"))
    with pytest.raises(InvalidOptionError, match="not valid Unicode"):
        store.query("red \ud800", k=1)  # the tokenizer raised a raw TypeError here
