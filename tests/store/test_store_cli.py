"""`focus index` and `focus query` through the real `focus` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import write_shape

from focus_integrations.cli import main
from focus_integrations.store import bundled_catalog_path


@pytest.fixture(scope="module")
def indexed_catalog(tmp_path_factory: pytest.TempPathFactory, minilm) -> Path:
    store = tmp_path_factory.mktemp("cli") / "store"
    assert main(["index", str(bundled_catalog_path()), "--store", str(store), "--no-progress"]) == 0
    return store


def test_index_reports_counts_and_is_incremental(tmp_path: Path, minilm, capsys) -> None:
    folder = tmp_path / "pics"
    write_shape(folder / "red_circle.png", "red", "circle")
    write_shape(folder / "blue_square.png", "blue", "square")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    store = tmp_path / "store"
    assert main(["index", str(folder), "--store", str(store), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "added 2, updated 0, unchanged 0, failed 1; 2 images in store" in out
    assert f"focus: skipped {folder / 'broken.png'}: " in err
    assert main(["index", str(folder), "--store", str(store), "--no-progress"]) == 0
    assert "added 0, updated 0, unchanged 2, failed 1" in capsys.readouterr().out


def test_query_retrieve_only(indexed_catalog: Path, capsys) -> None:
    assert (
        main(["query", "blue pendant", "--store", str(indexed_catalog), "--k", "2", "--retrieve-only"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[1] sku-") and "blue circle pendant" in lines[0]
    where = json.dumps({"category": "decor"})
    assert main(["query", "red", "--store", str(indexed_catalog), "--where", where, "--retrieve-only"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all("pennant" in line for line in lines)


def test_query_answers_with_the_focus_decoder(
    indexed_catalog: Path, tiny_checkpoint: Callable[..., Path], capsys
) -> None:
    model = str(tiny_checkpoint("qwen2_5_vl"))
    args = [
        "query",
        "which pendant is blue?",
        "--store",
        str(indexed_catalog),
        "--k",
        "3",
        "--model",
        model,
        "--max-new-tokens",
        "3",
        "--seed",
        "0",
    ]
    assert main(args) == 0
    out, err = capsys.readouterr()
    listed = [line for line in err.splitlines() if line.startswith("[")]  # the retrieved images, on stderr
    assert len(listed) == 3
    paths = [line.rsplit("  ", 1)[1] for line in listed]
    # The answer is exactly what the FOCUS decoder says over those three images, in that order.
    from focus_integrations import FocusDecoder
    from focus_integrations.store import ImageStore

    expected = FocusDecoder.from_pretrained(model).generate(
        images=paths, prompt="which pendant is blue?", mode="focus", max_new_tokens=3, seed=0
    )
    assert out == expected.text + "\n"
    assert [h.uri for h in ImageStore(indexed_catalog).query("which pendant is blue?", k=3)] == paths
    assert main([*args, "--mode", "vanilla"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "x", "--where", "{bad json"], "--where is not valid JSON"),
        (["query", "x", "--where", "[1]"], "--where must be a JSON object"),
        (["query", "x", "--k", "0"], "--k must be at least 1"),
        (["query", "x", "--collection", "a..b"], "invalid collection name"),
        (["query", "x", "--chroma-url", "http://127.0.0.1:9"], "cannot reach the Chroma server"),
        (["index", "/definitely/not/here"], "not a directory"),
    ],
)
def test_errors_are_one_line(indexed_catalog: Path, capsys, args: list[str], message: str) -> None:
    if "--chroma-url" not in args:
        args = [*args, "--store", str(indexed_catalog)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("focus: error: ") and message in err[0]


def test_empty_store_query_is_a_clear_error(tmp_path: Path, minilm, capsys) -> None:
    assert main(["query", "anything", "--store", str(tmp_path / "empty"), "--retrieve-only"]) == 2
    assert "no image store at" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()  # a query never creates a store
    from focus_integrations.store import ImageStore

    ImageStore(tmp_path / "made", embedder=minilm)  # exists, holds nothing
    assert main(["query", "anything", "--store", str(tmp_path / "made"), "--retrieve-only"]) == 2
    assert "holds no images" in capsys.readouterr().err


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    focus = Path(sys.executable).with_name("focus")
    if not focus.exists():
        pytest.skip("the focus console script is not installed in this environment")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [str(focus), "query", "x", "--store", str(tmp_path / "s"), "--where", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "focus: error: --where is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    ]


def test_index_with_a_caption_model(
    tmp_path: Path, minilm, tiny_checkpoint: Callable[..., Path], capsys
) -> None:
    folder = tmp_path / "pics"
    write_shape(folder / "a.png", "red", "circle")
    (folder / "b.png.txt").write_text("given caption")
    write_shape(folder / "b.png", "blue", "square")
    store = tmp_path / "store"
    model = str(tiny_checkpoint("qwen2_5_vl"))
    assert main(["index", str(folder), "--store", str(store), "--caption-model", model, "--no-progress"]) == 0
    assert "added 2" in capsys.readouterr().out
    from PIL import Image

    from focus_integrations import FocusDecoder
    from focus_integrations.store import ImageStore
    from focus_integrations.store.captioning import DecoderCaptioner

    records = {hit.id: hit for hit in ImageStore(store).get()}
    assert records["b.png"].caption == "given caption"
    expected = DecoderCaptioner(FocusDecoder.from_pretrained(model))(
        Image.open(folder / "a.png").convert("RGB")
    )
    assert records["a.png"].caption == (expected or "a")


def test_index_prune(tmp_path: Path, minilm, capsys) -> None:
    folder = tmp_path / "pics"
    write_shape(folder / "a.png", "red", "circle")
    write_shape(folder / "b.png", "blue", "square")
    store = tmp_path / "store"
    assert main(["index", str(folder), "--store", str(store), "--no-progress"]) == 0
    (folder / "b.png").unlink()
    assert main(["index", str(folder), "--store", str(store), "--no-progress", "--prune"]) == 0
    assert "unchanged 1, failed 0, deleted 1; 1 images in store" in capsys.readouterr().out


def test_bad_filter_operator_is_one_line(indexed_catalog: Path, capsys) -> None:
    args = [
        "query",
        "x",
        "--store",
        str(indexed_catalog),
        "--retrieve-only",
        "--where",
        '{"price": {"$lt": "a"}}',
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("focus: error: invalid where filter")


def test_command_wiring_does_not_import_chroma() -> None:
    # `focus ask` builds the whole parser: the store's sub-commands must not make every call pay for chromadb.
    code = (
        "import sys, focus_integrations.cli as cli; cli.build_parser(); "
        "assert 'chromadb' not in sys.modules, 'chromadb imported'; "
        "from focus_integrations.store import load_embedder; "
        "from chromadb.utils.embedding_functions import known_embedding_functions as known; "
        "assert 'focus_integrations' in known, 'not registered'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_query_like_an_example_image(indexed_catalog: Path, capsys, tmp_path: Path) -> None:
    example = bundled_catalog_path() / "teal-rectangle-notebook.png"
    args = ["query", "what is this?", "--store", str(indexed_catalog), "--like", str(example), "--k", "1"]
    assert main([*args, "--retrieve-only"]) == 0
    assert "teal rectangle notebook" in capsys.readouterr().out
    unknown = write_shape(tmp_path / "new.png", "red", "circle")  # not in the text-only store
    assert (
        main(["query", "q", "--store", str(indexed_catalog), "--like", str(unknown), "--retrieve-only"]) == 2
    )
    assert "text-only" in capsys.readouterr().err


def test_query_search_text_differs_from_the_question(indexed_catalog: Path, capsys) -> None:
    args = ["query", "What color is the shape in image 1?", "--store", str(indexed_catalog), "--k", "1"]
    assert main([*args, "--search", "gray notebook", "--retrieve-only"]) == 0
    assert "gray rectangle notebook" in capsys.readouterr().out
