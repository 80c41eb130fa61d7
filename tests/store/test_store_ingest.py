"""ImageStore on an embedded Chroma: ingest, sidecars, incremental updates, failures, queries, mismatches."""

from __future__ import annotations

import io
import json
from pathlib import Path

import chromadb
import numpy as np
import pytest
from PIL import Image
from store_helpers import shape_image, write_shape

from focus_integrations.errors import ImageLoadError, InvalidOptionError
from focus_integrations.store import (
    DuplicateIdError,
    Embedder,
    EmbedderCapabilityError,
    EmbedderMismatchError,
    ImageItem,
    ImageStore,
    InvalidCollectionNameError,
    RecordNotFoundError,
    SidecarError,
    StoreError,
    bundled_catalog_path,
    chroma_settings,
    load_embedder,
)
from focus_integrations.store.sidecars import read_folder_sidecars


def test_folder_ingest_reads_every_sidecar_kind(tmp_path: Path, make_store) -> None:
    folder = tmp_path / "products"
    write_shape(folder / "a.png", "red", "circle")
    write_shape(folder / "b.png", "blue", "square")
    write_shape(folder / "c.png", "green", "triangle")
    write_shape(folder / "yellow_sun-hat.png", "yellow", "circle")
    write_shape(folder / "sub" / "d.png", "blue", "circle")
    (folder / "catalog.json").write_text(
        json.dumps(
            [
                {
                    "file": "a.png",
                    "id": "sku-1",
                    "caption": "red circle pendant",
                    "price": 12.5,
                    "tags": ["gift", "red"],
                },
                {"file": "sub/d.png", "description": "blue circle badge", "in_stock": False},
            ]
        )
    )
    (folder / "metadata.jsonl").write_text(
        json.dumps({"file": "b.png", "caption": "blue square tile"})
        + "\n"
        + json.dumps({"file": "gone.png", "caption": "not there"})
        + "\n"
    )
    (folder / "c.png.txt").write_text("green triangle flag\n")
    (folder / "notes.md").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"ignored")

    store = make_store()
    report = store.add_folder(folder)
    assert sorted(report.added) == ["b.png", "c.png", "sku-1", "sub/d.png", "yellow_sun-hat.png"]
    assert report.failed == [] and report.skipped_unchanged == []
    assert report.warnings == [f"{folder}: sidecar entry 'gone.png' names no image file"]
    records = {
        hit.id: hit for hit in store.get(["sku-1", "b.png", "c.png", "sub/d.png", "yellow_sun-hat.png"])
    }
    assert records["sku-1"].caption == "red circle pendant"
    assert records["sku-1"].metadata == {"price": 12.5, "tags": '["gift", "red"]'}  # lists stored as JSON
    assert records["b.png"].caption == "blue square tile"
    assert records["c.png"].caption == "green triangle flag"
    assert records["sub/d.png"].caption == "blue circle badge"
    assert records["sub/d.png"].metadata == {"in_stock": False}
    assert records["yellow_sun-hat.png"].caption == "yellow sun hat"
    assert records["sku-1"].uri == str((folder / "a.png").absolute())  # a path, not inlined image data
    assert records["sku-1"].image().size == (48, 48)
    assert store.count() == 5


def test_reingest_skips_unchanged_and_updates_changed(tmp_path: Path, make_store) -> None:
    folder = tmp_path / "imgs"
    write_shape(folder / "one.png", "red", "circle")
    write_shape(folder / "two.png", "blue", "square")
    (folder / "catalog.json").write_text(json.dumps([{"file": "one.png", "caption": "red one", "size": "L"}]))
    store = make_store()
    assert sorted(store.add_folder(folder).added) == ["one.png", "two.png"]
    again = store.add_folder(folder)
    assert (
        again.added == []
        and again.updated == []
        and sorted(again.skipped_unchanged) == ["one.png", "two.png"]
    )

    write_shape(folder / "two.png", "green", "triangle")  # new pixels, same name
    (folder / "catalog.json").write_text(json.dumps([{"file": "one.png", "caption": "red one, renamed"}]))
    third = store.add_folder(folder)
    assert sorted(third.updated) == ["one.png", "two.png"] and third.added == []
    one = store.get(["one.png"])[0]
    assert (
        one.caption == "red one, renamed" and "size" not in one.metadata
    )  # a field dropped from the sidecar
    assert store.count() == 2
    # The embedding followed the caption: the new caption text now finds it first.
    assert store.query("red one, renamed", k=1)[0].id == "one.png"


def test_bad_images_are_skipped_with_reasons(tmp_path: Path, make_store) -> None:
    folder = tmp_path / "mixed"
    write_shape(folder / "good.png", "red", "circle")
    (folder / "text.png").write_text("this is not a png")
    (folder / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    shape_image("blue", "square").save(buffer, format="PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[:60])
    Image.new("RGB", (300, 300), "white").save(folder / "huge.png")
    (folder / "big-file.bmp").write_bytes(b"BM" + b"\0" * 5000)

    store = make_store(max_pixels=200 * 200, max_file_bytes=4000)
    report = store.add_folder(folder)
    assert report.added == ["good.png"]
    reasons = {Path(path).name: reason for path, reason in report.failed}
    assert set(reasons) == {"text.png", "empty.jpg", "truncated.png", "huge.png", "big-file.bmp"}
    assert "300x300" in reasons["huge.png"] and "max_pixels" in reasons["huge.png"]
    assert "max_file_bytes" in reasons["big-file.bmp"]
    assert "not a readable image" in reasons["text.png"]
    assert store.count() == 1
    assert "failed 5" in report.summary()


def test_duplicate_ids_are_refused_before_writing(tmp_path: Path, make_store) -> None:
    store = make_store()
    first, second = (
        write_shape(tmp_path / "1.png", "red", "circle"),
        write_shape(tmp_path / "2.png", "blue", "square"),
    )
    with pytest.raises(DuplicateIdError, match="'same'"):
        store.add_images([ImageItem(first, id="same"), ImageItem(second, id="same")])
    assert store.count() == 0
    folder = tmp_path / "catalog"
    write_shape(folder / "x.png", "red", "circle")
    write_shape(folder / "y.png", "blue", "circle")
    (folder / "catalog.json").write_text(
        json.dumps([{"file": "x.png", "id": "p"}, {"file": "y.png", "id": "p"}])
    )
    with pytest.raises(DuplicateIdError):
        store.add_folder(folder)
    assert store.count() == 0
    # Re-adding an id in a later call is an update, not a duplicate.
    store.add_images([ImageItem(first, id="same")])
    assert store.add_images([ImageItem(second, id="same")]).updated == ["same"]
    assert store.count() == 1


def test_malformed_sidecar_fails_the_files_of_its_folder(tmp_path: Path, make_store) -> None:
    folder = tmp_path / "bad"
    write_shape(folder / "x.png", "red", "circle")
    (folder / "catalog.json").write_text("{not json")
    store = make_store()
    report = store.add_folder(folder)
    assert store.count() == 0 and report.failed == [(str(folder / "x.png"), report.failed[0][1])]
    assert "invalid JSON" in report.failed[0][1]
    with pytest.raises(SidecarError, match="invalid JSON"):
        read_folder_sidecars(folder)


@pytest.mark.parametrize(
    "name",
    ["ab", "-images", "images-", "a..b", "10.0.0.1", "has space", "ünïcode", "x" * 513, "", "abc\n", 42],
)
def test_invalid_collection_names(tmp_path: Path, minilm, name: str) -> None:
    with pytest.raises(InvalidCollectionNameError):
        ImageStore(tmp_path / "store", collection=name, embedder=minilm)


def test_valid_unusual_collection_name(make_store) -> None:
    store = make_store(collection="shop.images_v-2")
    assert store.collection.name == "shop.images_v-2"


def test_in_memory_images_are_saved_as_files(tmp_path: Path, make_store) -> None:
    store = make_store()
    pil = shape_image("red", "circle")
    array = np.asarray(shape_image("blue", "square"))
    buffer = io.BytesIO()
    shape_image("green", "triangle").save(buffer, format="JPEG")
    report = store.add_images(
        [
            ImageItem(pil, caption="red circle"),
            {"image": array, "id": "blue", "caption": "blue square", "colour": "blue"},
            ImageItem(buffer.getvalue(), id="green", caption="green triangle"),
            ImageItem(b"garbage", id="broken"),
        ]
    )
    assert len(report.added) == 3 and [r[0] for r in report.failed] == ["broken"]
    red_id = next(i for i in report.added if i.startswith("sha256:"))
    red, blue, green = store.get([red_id, "blue", "green"])
    assert np.array_equal(np.asarray(red.image()), np.asarray(pil))  # PNG round trip is lossless
    assert np.array_equal(np.asarray(blue.image()), array)
    assert blue.metadata == {"colour": "blue"}
    assert Path(green.uri).suffix == ".jpg" and Path(green.uri).parent == store.media_dir
    assert all(Path(h.uri).is_file() for h in (red, blue, green))


def test_update_and_delete(tmp_path: Path, make_store) -> None:
    store = make_store()
    paths = [write_shape(tmp_path / f"{c}.png", c, "circle") for c in ("red", "blue", "green")]
    store.add_images(
        [
            ImageItem(p, id=p.stem, caption=f"{p.stem} circle", metadata={"shop": "a", "n": i})
            for i, p in enumerate(paths)
        ]
    )

    updated = store.update("red", caption="crimson umbrella", metadata={"n": None, "on_sale": True})
    assert updated.caption == "crimson umbrella" and updated.metadata == {"shop": "a", "on_sale": True}
    assert store.query("umbrella", k=1)[0].id == "red"  # re-embedded from the new caption

    new_file = write_shape(tmp_path / "red-square.png", "red", "square")
    moved = store.update("red", image=new_file)
    assert moved.uri == str(new_file.absolute()) and moved.caption == "crimson umbrella"
    with pytest.raises(RecordNotFoundError, match="nope"):
        store.update("nope", caption="x")

    assert store.delete("green") == ["green"]
    assert sorted(store.delete(where={"shop": "a"})) == ["blue", "red"]
    assert store.count() == 0
    store.add_images([ImageItem(paths[0], id="kept")])
    for refused in ({}, {"where": None}, {"where": {}}):
        with pytest.raises(InvalidOptionError, match="refusing"):
            store.delete(**refused)
    assert store.count() == 1


def test_text_queries_filters_and_limits(shapes_dir: Path, make_store) -> None:
    store = make_store()
    assert store.query("anything") == []  # empty store
    store.add_folder(shapes_dir, metadata_fn=lambda p: {"colour": p.stem.split("_")[0]})
    hits = store.query("a blue square", k=3)
    assert hits[0].id == "blue_square.png"
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert {h.id for h in store.query("circle", k=6, where={"colour": "green"})} == {
        "green_circle.png",
        "green_square.png",
    }
    assert len(store.query("shape", k=50)) == 6
    for bad_k in (0, -1, 2.5, True):
        with pytest.raises(InvalidOptionError):
            store.query("x", k=bad_k)
    with pytest.raises(InvalidOptionError):
        store.query("x", image=shapes_dir / "red_circle.png")
    with pytest.raises(InvalidOptionError):
        store.query("   ")


def test_image_query_with_text_only_embedder(shapes_dir: Path, tmp_path: Path, make_store) -> None:
    store = make_store()
    store.add_folder(shapes_dir)
    same = store.query(image=shapes_dir / "blue_square.png", k=2)
    assert same[0].id == "blue_square.png" and same[0].distance == pytest.approx(0.0, abs=1e-4)
    unknown = write_shape(tmp_path / "new.png", "yellow", "triangle")
    with pytest.raises(EmbedderCapabilityError, match="captioner"):
        store.query(image=unknown)
    hits = store.query(image=unknown, captioner=lambda image: "green circle", k=1)
    assert hits[0].id == "green_circle.png"


def test_clip_store_searches_by_image_content(shapes_dir: Path, tiny_clip_dir: Path, make_store) -> None:
    store = make_store(embedder=f"clip:{tiny_clip_dir}")
    store.add_folder(shapes_dir)
    assert store.collection.metadata["focus_embeds"] == "image"
    # A re-encoded copy (different bytes, same pixels) is found through the image embedding itself.
    copy = io.BytesIO()
    Image.open(shapes_dir / "green_square.png").save(copy, format="BMP")
    hit = store.query(image=copy.getvalue(), k=1)[0]
    assert hit.id == "green_square.png" and hit.distance == pytest.approx(0.0, abs=1e-4)
    assert len(store.query("a green square", k=3)) == 3
    # An example image with a metadata filter: the nearest image among the filtered ones.
    store.update("red_circle.png", metadata={"aisle": 7})
    store.update("blue_circle.png", metadata={"aisle": 7})
    filtered = store.query(image=shapes_dir / "blue_circle.png", k=5, where={"aisle": 7})
    assert [h.id for h in filtered][0] == "blue_circle.png" and {h.id for h in filtered} == {
        "red_circle.png",
        "blue_circle.png",
    }


def test_store_records_its_embedder_and_refuses_another(tmp_path: Path, minilm, tiny_clip_dir: Path) -> None:
    path = tmp_path / "store"
    store = ImageStore(path, embedder=minilm)
    store.add_images([ImageItem(write_shape(tmp_path / "r.png", "red", "circle"), caption="red circle")])
    meta = store.collection.metadata
    assert meta["focus_embedder"] == "minilm:all-MiniLM-L6-v2" and meta["focus_embedder_dim"] == 384
    with pytest.raises(EmbedderMismatchError, match="minilm:all-MiniLM-L6-v2"):
        ImageStore(path, embedder=f"clip:{tiny_clip_dir}")
    reopened = ImageStore(path)  # no embedder given: the recorded one
    assert reopened.embedder is minilm and reopened.query("red", k=1)[0].caption == "red circle"
    # Another collection in the same store may use another embedder.
    other = ImageStore(path, collection="clip-images", embedder=f"clip:{tiny_clip_dir}")
    assert other.embedder.name.startswith("clip:") and other.count() == 0


def test_foreign_collection_is_refused(tmp_path: Path, minilm) -> None:
    path = tmp_path / "store"
    client = chromadb.PersistentClient(path=str(path), settings=chroma_settings())
    client.create_collection("focus-images", embedding_function=None).add(ids=["x"], embeddings=[[0.0, 1.0]])
    with pytest.raises(EmbedderMismatchError, match="not made by focus_integrations"):
        ImageStore(client=client, embedder=minilm)


def test_reopened_collection_never_uses_chromas_default_embedder(
    shapes_dir: Path, make_store, tmp_path
) -> None:
    store = make_store(path=tmp_path / "reopen")
    store.add_folder(shapes_dir)
    # A plain chromadb client that passes no embedding function gets ours back from the stored config; the
    # default would try to download an ONNX model here and fail (no network).
    collection = chromadb.PersistentClient(
        path=str(tmp_path / "reopen"), settings=chroma_settings()
    ).get_collection("focus-images")
    result = collection.query(query_texts=["red circle"], n_results=1)
    assert result["ids"][0] == ["red_circle.png"]


def test_progress_bar_and_captioner(tmp_path: Path, make_store, capsys) -> None:
    folder = tmp_path / "cap"
    write_shape(folder / "a.png", "red", "circle")
    write_shape(folder / "b.png", "blue", "square")
    (folder / "b.png.txt").write_text("given caption")
    seen: list[tuple[int, int]] = []

    def captioner(image: Image.Image) -> str:
        seen.append(image.size)
        return "  a model's\ncaption "

    store = make_store()
    report = store.add_folder(folder, captioner=captioner, progress=True)
    assert seen == [(48, 48)]  # only the image without a caption
    assert store.get(["a.png"])[0].caption == "a model's\ncaption"
    assert "indexing images" in capsys.readouterr().err

    def broken(image: Image.Image) -> str:
        raise RuntimeError("model crashed")

    write_shape(folder / "c.png", "green", "circle")
    report = store.add_folder(folder, captioner=broken, progress=False)
    assert report.added == ["c.png"] and "model crashed" in report.warnings[0]
    assert store.get(["c.png"])[0].caption == "c"  # fell back to the file name
    assert capsys.readouterr().err == ""


def test_bundled_catalog(make_store) -> None:
    folder = bundled_catalog_path()
    entries = json.loads((folder / "catalog.json").read_text())
    assert 24 <= len(entries) <= 32  # 24 products, a few with several photos
    assert sum(f.stat().st_size for f in folder.iterdir()) < 300_000
    store = make_store()
    report = store.add_folder(folder)
    assert len(report.added) == len(entries) and not report.failed
    top = store.query("yellow triangle pennant", k=1)[0]
    assert top.metadata["colour"] == "yellow" and top.metadata["shape"] == "triangle"
    cheap = store.query(
        "notebook", k=24, where={"$and": [{"category": "stationery"}, {"price": {"$lt": 15}}]}
    )
    expected = {e["id"] for e in entries if e["category"] == "stationery" and e["price"] < 15}
    assert {h.id for h in cheap} == expected and expected


def test_bad_arguments(tmp_path: Path, minilm) -> None:
    with pytest.raises(InvalidOptionError):
        ImageStore(tmp_path / "a", url="http://127.0.0.1:1", embedder=minilm)
    with pytest.raises(InvalidOptionError):
        ImageStore(tmp_path / "b", batch_size=0, embedder=minilm)
    with pytest.raises(InvalidOptionError, match="maximum"):
        ImageStore(tmp_path / "b2", batch_size=10**7, embedder=minilm)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        ImageStore(tmp_path / "file", embedder=minilm)
    store = ImageStore(tmp_path / "c", embedder=minilm)
    with pytest.raises(StoreError, match="not a directory"):
        store.add_folder(tmp_path / "missing")
    with pytest.raises(ImageLoadError):
        store.query(image=tmp_path / "missing.png")
    assert load_embedder("minilm") is minilm


def test_decoder_captioner_captions_at_ingest(tmp_path: Path, make_store, tiny_checkpoint) -> None:
    from focus_integrations import FocusDecoder
    from focus_integrations.store.captioning import DecoderCaptioner

    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))
    captioner = DecoderCaptioner(decoder, max_new_tokens=3, seed=0, mode="vanilla")
    folder = tmp_path / "uncaptioned"
    image_path = write_shape(folder / "x.png", "red", "circle")
    store = make_store()
    store.add_folder(folder, captioner=captioner)
    expected = decoder.generate(
        images=[Image.open(image_path).convert("RGB")],
        prompt=captioner.prompt,
        max_new_tokens=3,
        seed=0,
        mode="vanilla",
    ).text
    record = store.get(["x.png"])[0]
    assert record.caption == (" ".join(expected.split()) or "x")
    stored = store.collection.get(ids=["x.png"], include=["metadatas"])["metadatas"][0]
    assert stored["focus_caption_source"] == ("captioner" if expected.split() else "file")


def test_moved_embedder_model_is_found_again(tmp_path: Path, tiny_clip_dir: Path) -> None:
    import shutil

    from focus_integrations.errors import ModelNotFoundError

    model = tmp_path / "models" / "clip-tiny"
    shutil.copytree(tiny_clip_dir, model)
    path = tmp_path / "store"
    ImageStore(path, embedder=f"clip:{model}").add_images(
        [ImageItem(write_shape(tmp_path / "a.png", "red", "circle"), id="a")]
    )
    moved = tmp_path / "moved" / "clip-tiny"
    shutil.move(str(model), moved)
    import focus_integrations.store.embedders as embedders

    # A new process would not have the old model in memory either (other cached embedders stay).
    for key in [key for key in embedders._cache if key[0] == f"clip:{model}"]:
        del embedders._cache[key]
    with pytest.raises(ModelNotFoundError, match="pass embedder="):
        ImageStore(path)
    reopened = ImageStore(path, embedder=f"clip:{moved}")  # same model, new place: accepted
    assert reopened.get(["a"])[0].id == "a"


def test_prune_removes_records_of_deleted_files_only(tmp_path: Path, make_store) -> None:
    folder, other = tmp_path / "main", tmp_path / "other"
    for name, colour in (("a", "red"), ("b", "blue"), ("c", "green")):
        write_shape(folder / f"{name}.png", colour, "circle")
    write_shape(other / "a.png", "yellow", "square")
    store = make_store()
    store.add_folder(folder)
    store.add_images([ImageItem(other / "a.png", id="other-a")])
    (folder / "b.png").unlink()
    (folder / "c.png").write_bytes(b"now corrupt")
    kept = store.add_folder(folder)  # without prune nothing is deleted
    assert kept.deleted == [] and store.count() == 4
    report = store.add_folder(folder, prune=True)
    assert report.deleted == ["b.png"] and "deleted 1" in report.summary()
    assert [Path(p).name for p, _ in report.failed] == ["c.png"]
    assert sorted(h.id for h in store.get()) == [
        "a.png",
        "c.png",
        "other-a",
    ]  # failed c and other folder stay


def test_moved_folder_updates_paths(tmp_path: Path, make_store) -> None:
    folder = tmp_path / "before"
    write_shape(folder / "a.png", "red", "circle")
    store = make_store()
    store.add_folder(folder)
    moved = folder.rename(tmp_path / "after")
    report = store.add_folder(moved)
    assert report.updated == ["a.png"] and report.skipped_unchanged == []
    assert store.get(["a.png"])[0].uri == str((moved / "a.png").absolute())
    assert store.add_folder(moved).skipped_unchanged == ["a.png"]


@pytest.mark.parametrize(
    "where", [{"$foo": 1}, {"price": {"$lt": "cheap"}}, {"price": {"$between": [1, 2]}}, ["colour", "red"]]
)
def test_bad_filters_are_invalid_options(shapes_dir: Path, make_store, where) -> None:
    store = make_store()
    store.add_folder(shapes_dir)
    for call in (
        lambda: store.query("red", where=where),
        lambda: store.get(where=where),
        lambda: store.delete(where=where),
    ):
        with pytest.raises(InvalidOptionError, match="where"):
            call()
    assert store.count() == 6


def test_records_written_by_other_tools_are_readable(make_store, minilm) -> None:
    store = make_store()
    # A record added straight through chromadb, with no URI, document or metadata.
    store.collection.add(ids=["raw"], embeddings=minilm.embed_texts(["plain text record"]))
    (hit,) = store.get(["raw"])
    assert hit.uri == "" and hit.caption == "" and hit.metadata == {} and hit.sha256 is None
    assert store.query("plain text record", k=1)[0].id == "raw"


class ColourEmbedder(Embedder):
    """A user-defined image embedder: mean RGB of the image, or of a colour named in the text."""

    spec = "custom:mean-colour"
    name = "custom:mean-colour-v1"
    dim = 3
    modalities = frozenset({"text", "image"})
    NAMED = {"red": (1.0, 0.1, 0.1), "blue": (0.1, 0.2, 1.0), "green": (0.1, 0.8, 0.2)}

    def embed_texts(self, texts):
        vectors = [next((v for k, v in self.NAMED.items() if k in t), (1.0, 1.0, 1.0)) for t in texts]
        return [list(np.asarray(v) / np.linalg.norm(v)) for v in vectors]

    def embed_images(self, images):
        out = []
        for image in images:
            pixels = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3)
            coloured = pixels[pixels.min(axis=1) < 200].mean(axis=0)  # ignore the light background
            out.append(list(coloured / np.linalg.norm(coloured)))
        return out


def test_a_user_defined_embedder_plugs_in(shapes_dir: Path, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "custom", embedder=ColourEmbedder())
    store.add_folder(shapes_dir)
    assert store.collection.metadata["focus_embedder"] == "custom:mean-colour-v1"
    assert {h.id for h in store.query("something blue", k=2)} == {"blue_circle.png", "blue_square.png"}
    with pytest.raises(EmbedderMismatchError):
        ImageStore(tmp_path / "custom", embedder="minilm")


def test_non_recursive_ingest_and_store_inside_the_folder(tmp_path: Path, minilm) -> None:
    folder = tmp_path / "photos"
    write_shape(folder / "top.png", "red", "circle")
    write_shape(folder / "nested" / "deep.png", "blue", "square")
    # The store lives inside the folder it indexes: its own media files must never be indexed.
    store = ImageStore(folder / "store", embedder=minilm)
    store.add_images([ImageItem(shape_image("green", "circle"), id="in-memory")])
    assert any((folder / "store" / "media").iterdir())
    assert store.add_folder(folder, recursive=False).added == ["top.png"]
    assert sorted(store.add_folder(folder).added) == ["nested/deep.png"]
    assert store.count() == 3


def test_large_deletes_go_in_chunks(shapes_dir: Path, make_store, monkeypatch) -> None:
    store = make_store()
    store.add_folder(shapes_dir)
    store._max_batch = 4  # as if this Chroma accepted at most 4 records per call
    calls: list[int] = []
    real_delete = store._collection.delete
    monkeypatch.setattr(
        store._collection, "delete", lambda ids: calls.append(len(ids)) or real_delete(ids=ids)
    )
    assert len(store.delete(where={"focus_width": {"$gt": 0}})) == 6
    assert calls == [4, 2] and store.count() == 0
