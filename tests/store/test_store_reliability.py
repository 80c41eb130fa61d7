"""Reliability with a real Chroma: a SIGKILL mid-ingest, a `chroma run` server on loopback, embedded vs HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_helpers import shape_image, write_shape

from focus_integrations.errors import InvalidOptionError
from focus_integrations.store import (
    EmbedderMismatchError,
    ImageItem,
    ImageStore,
    StoreConnectionError,
)
from focus_integrations.store.testing import chroma_server, free_port

COLOURS = ("red", "blue", "green", "yellow")
SHAPES = ("circle", "square", "triangle")
QUERIES = ("a red circle", "yellow triangle", "blue square shape")


def _many_images(folder: Path, count: int) -> list[str]:
    names = []
    for index in range(count):
        colour, shape = COLOURS[index % 4], SHAPES[(index // 4) % 3]
        name = f"{colour}_{shape}_{index:02d}.png"
        write_shape(folder / name, colour, shape, size=40 + index)  # sizes differ: every file is distinct
        names.append(name)
    return names


def _child_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


SLOW_INGEST = textwrap.dedent(
    """
    import sys, time
    from focus_integrations.store import ImageStore

    store = ImageStore(sys.argv[1], batch_size=4)

    def slow_captioner(image):
        print("captioned", flush=True)
        time.sleep(0.2)
        return "a shape {}x{}".format(*image.size)

    store.add_folder(sys.argv[2], captioner=slow_captioner, progress=False)
    print("finished", flush=True)
    """
)


def test_sigkill_mid_ingest_leaves_a_store_that_a_rerun_completes(tmp_path: Path) -> None:
    folder, store_path = tmp_path / "images", tmp_path / "store"
    names = _many_images(folder, 24)
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_INGEST, str(store_path), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    captioned = 0
    deadline = time.monotonic() + 120
    while captioned < 10 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        captioned += line.strip() == "captioned"
    assert captioned == 10, child.stderr.read()
    child.send_signal(signal.SIGKILL)  # no cleanup, no atexit, no flush: a crash
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    store = ImageStore(store_path)  # reopens; the embedder comes from the store's own record
    survived = store.get()
    # Batches of 4 are written after their 4th caption: at least two were done when the 10th caption was
    # printed. Whatever the kill interrupted left nothing behind: the count is a whole number of batches.
    written = store.count()
    assert len(survived) == written and written % 4 == 0 and 8 <= written < 24
    for hit in survived:  # every record that is there is whole
        assert hit.sha256 and hit.caption.startswith("a shape") and Path(hit.uri).is_file()

    report = store.add_folder(folder, captioner=lambda image: "a shape {}x{}".format(*image.size))
    assert (
        len(report.skipped_unchanged) == written and len(report.added) == 24 - written and not report.failed
    )
    assert store.count() == 24 and sorted(h.id for h in store.get()) == sorted(names)


def test_http_store_full_cycle(chroma_url: str, shapes_dir: Path, minilm, tmp_path: Path) -> None:
    store = ImageStore(url=chroma_url, collection="http-cycle", embedder=minilm)
    assert store.path is None and store.url == chroma_url
    report = store.add_folder(shapes_dir)
    assert len(report.added) == 6
    assert store.add_folder(shapes_dir).skipped_unchanged.__len__() == 6
    assert store.query("a blue square", k=1)[0].id == "blue_square.png"
    store.update("red_circle.png", caption="scarlet ball", metadata={"sale": True})
    assert store.query("scarlet ball", k=1, where={"sale": True})[0].id == "red_circle.png"
    assert store.delete(["green_square.png"]) == ["green_square.png"] and store.count() == 5
    with pytest.raises(InvalidOptionError, match="media_dir"):
        store.add_images([ImageItem(shape_image("red", "circle"))])
    with_media = ImageStore(url=chroma_url, collection="http-cycle", media_dir=tmp_path / "media")
    assert with_media.embedder is minilm  # recorded in the collection on the server
    assert (
        len(with_media.add_images([ImageItem(shape_image("red", "circle"), caption="red disc")]).added) == 1
    )


def test_http_store_refuses_another_embedder(
    chroma_url: str, minilm, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    ImageStore(url=chroma_url, collection="http-mismatch", embedder=minilm).add_images(
        [ImageItem(write_shape(tmp_path / "a.png", "red", "circle"), caption="red")]
    )
    with pytest.raises(EmbedderMismatchError):
        ImageStore(url=chroma_url, collection="http-mismatch", embedder=f"clip:{tiny_clip_dir}")


def test_unreachable_server_is_a_clear_error(minilm) -> None:
    with pytest.raises(StoreConnectionError, match="cannot reach"):
        ImageStore(url=f"http://127.0.0.1:{free_port()}", embedder=minilm)
    with pytest.raises(InvalidOptionError):
        ImageStore(url="ftp://example.invalid", embedder=minilm)


EMBEDDED_BUILD = textwrap.dedent(
    """
    import json, sys
    from focus_integrations.store import ImageStore

    store = ImageStore(sys.argv[1])
    store.add_folder(sys.argv[2], progress=False)
    answers = {q: [[h.id, h.distance] for h in store.query(q, k=3)] for q in json.loads(sys.argv[3])}
    print(json.dumps(answers))
    """
)


def test_embedded_and_http_clients_give_the_same_answers(tmp_path: Path, shapes_dir: Path, minilm) -> None:
    store_path = tmp_path / "shared-store"
    built = subprocess.run(
        [sys.executable, "-c", EMBEDDED_BUILD, str(store_path), str(shapes_dir), json.dumps(QUERIES)],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=180,
    )
    assert built.returncode == 0, built.stderr
    embedded = json.loads(built.stdout.strip().splitlines()[-1])
    with chroma_server(store_path) as url:  # the same folder, now served over HTTP
        store = ImageStore(url=url)
        assert store.count() == 6 and store.embedder is minilm
        for question in QUERIES:
            over_http = store.query(question, k=3)
            assert [h.id for h in over_http] == [i for i, _ in embedded[question]]
            assert [h.distance for h in over_http] == pytest.approx(
                [d for _, d in embedded[question]], abs=1e-5
            )


def test_cli_index_and_query_over_http(chroma_url: str, minilm, capsys) -> None:
    from focus_integrations.cli import main
    from focus_integrations.store import bundled_catalog_path

    location = ["--chroma-url", chroma_url, "--collection", "cli-http"]
    assert main(["index", str(bundled_catalog_path()), *location, "--no-progress"]) == 0
    photos = len(json.loads((bundled_catalog_path() / "catalog.json").read_text()))
    assert f"added {photos}," in capsys.readouterr().out
    assert main(["query", "yellow pennant", *location, "--k", "1", "--retrieve-only"]) == 0
    assert "yellow triangle pennant" in capsys.readouterr().out


def test_server_going_away_mid_session(tmp_path: Path, shapes_dir: Path, minilm, capsys) -> None:
    from focus_integrations.cli import main

    with chroma_server(tmp_path / "short-lived") as url:
        store = ImageStore(url=url, embedder=minilm)
        store.add_folder(shapes_dir)
        assert type(store.collection).__name__ == "Collection"  # the real chromadb object, for other tools
    # The server is stopped: every call is a StoreConnectionError, not an httpx traceback.
    with pytest.raises(StoreConnectionError, match="lost the Chroma server"):
        store.query("red circle")
    with pytest.raises(StoreConnectionError):
        store.add_folder(shapes_dir)
    assert main(["query", "red", "--chroma-url", url, "--retrieve-only"]) == 2
    assert "cannot reach the Chroma server" in capsys.readouterr().err
