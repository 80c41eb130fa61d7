"""A checkpoint folder can carry validated FOCUS settings in focus_config.json."""

from __future__ import annotations

import json
import shutil

import pytest

from focus_integrations import DecodingOptions, FocusDecoder, InvalidOptionError, default_model_path
from focus_integrations.testing.tiny_models import tiny_checkpoint


@pytest.fixture()
def checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llava"), folder)
    return folder


def test_focus_config_sets_defaults_and_arguments_win(checkpoint) -> None:
    (checkpoint / "focus_config.json").write_text(json.dumps({"alpha": 0.7, "noise": "black"}))
    decoder = FocusDecoder.from_pretrained(checkpoint)
    assert decoder.checkpoint_defaults == {"alpha": 0.7, "noise": "black"}
    assert decoder.resolve_options().alpha == 0.7 and decoder.resolve_options().noise == "black"
    # None is "not set" (argparse and LlamaIndex pass it): the checkpoint's alpha stays.
    assert decoder.resolve_options(alpha=None).alpha == 0.7
    chosen = FocusDecoder.from_pretrained(checkpoint, alpha=0.2).resolve_options()
    assert (chosen.alpha, chosen.noise) == (0.2, "black")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"alpha": -1}', '{"colour": "red"}'])
def test_bad_focus_config_is_a_clear_error(checkpoint, content) -> None:
    (checkpoint / "focus_config.json").write_text(content)
    with pytest.raises(InvalidOptionError, match="focus_config.json|alpha|colour"):
        FocusDecoder.from_pretrained(checkpoint)


def test_the_default_model_ships_the_alpha_its_lab_chose_on_validation() -> None:
    summary = json.loads((default_model_path() / "lab_summary.json").read_text())
    assert summary["alpha_chosen_on"] == "val"
    decoder = FocusDecoder.from_pretrained(default_model_path())
    assert decoder.checkpoint_defaults["alpha"] == summary["alpha"]
    chosen = decoder.resolve_options(alpha=None, mode="focus")  # None keeps the checkpoint's alpha
    assert chosen.alpha == DecodingOptions.resolve(alpha=summary["alpha"]).alpha
