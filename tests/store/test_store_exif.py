"""Phone photos in the store: a JPEG tagged "rotate 90" is measured, embedded, saved and handed back upright."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from focus_integrations.testing.exif import exif_rotated_jpeg, looks_upright, quadrant_picture

UPRIGHT = quadrant_picture(48, 32)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "phone.jpg").write_bytes(exif_rotated_jpeg(UPRIGHT, 6))
    (folder / "mirrored.jpg").write_bytes(exif_rotated_jpeg(UPRIGHT, 7))
    return folder


def _pillow_upright(path: Path) -> Image.Image:
    """The reference: Pillow's own EXIF transpose of the file (what transformers' load_image does)."""
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def test_ingest_measures_embeds_and_returns_photos_upright(
    make_store, photo_dir: Path, tiny_clip_dir
) -> None:
    from focus_integrations.store import load_embedder

    embedder = load_embedder(f"clip:{tiny_clip_dir}")
    store = make_store(embedder=embedder)
    report = store.add_folder(photo_dir)
    assert sorted(report.added) == ["mirrored.jpg", "phone.jpg"]
    stored = store.collection.get(ids=["phone.jpg"], include=["metadatas", "embeddings"])
    meta = stored["metadatas"][0]
    assert (meta["focus_width"], meta["focus_height"]) == (48, 32)  # the stored pixels are 32 x 48
    expected = embedder.embed_images([_pillow_upright(photo_dir / "phone.jpg")])[0]
    sideways = embedder.embed_images([Image.open(photo_dir / "phone.jpg").convert("RGB").copy()])[0]
    np.testing.assert_allclose(stored["embeddings"][0], expected, atol=1e-5)
    assert not np.allclose(stored["embeddings"][0], sideways, atol=1e-3)
    for hit in store.get(["phone.jpg", "mirrored.jpg"]):
        assert looks_upright(hit.image(), UPRIGHT)
    # Query by the photo itself: the stored record, at distance ~0 (the query image is turned the same way).
    best = store.query(image=photo_dir / "phone.jpg", k=1)[0]
    assert best.id == "phone.jpg" and best.distance < 1e-5


def test_in_memory_photos_are_saved_upright(make_store, tmp_path: Path) -> None:
    store = make_store(media_dir=tmp_path / "media")
    opened = Image.open(io.BytesIO(exif_rotated_jpeg(UPRIGHT, 6)))
    report = store.add_images(
        [{"image": opened, "id": "pil"}, {"image": exif_rotated_jpeg(UPRIGHT, 8), "id": "raw"}]
    )
    assert sorted(report.added) == ["pil", "raw"]
    for hit in store.get(["pil", "raw"]):
        assert (hit.metadata.get("focus_width"), looks_upright(hit.image(), UPRIGHT)) == (None, True)
        saved = Image.open(hit.uri)  # the media copy itself: upright pixels, or its tag kept with them
        assert looks_upright(ImageOps.exif_transpose(saved).convert("RGB"), UPRIGHT)
    meta = store.collection.get(ids=["pil", "raw"], include=["metadatas"])["metadatas"]
    assert all((m["focus_width"], m["focus_height"]) == (48, 32) for m in meta)


def test_langchain_retriever_documents_decode_upright(make_store, photo_dir: Path) -> None:
    pytest.importorskip("langchain_core")
    from focus_integrations.langchain._messages import ImagePolicy, to_engine_messages
    from focus_integrations.langchain.retriever import FocusImageRetriever, images_to_message

    store = make_store()
    store.add_folder(photo_dir)
    documents = FocusImageRetriever(store=store, k=2).invoke("phone")
    engine = to_engine_messages([images_to_message(documents, "which corner is red?")], ImagePolicy())
    images = [item["image"] for item in engine[0]["content"] if item["type"] == "image"]
    assert len(images) == 2 and all(looks_upright(image, UPRIGHT) for image in images)
