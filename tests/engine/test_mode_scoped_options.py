"""FOCUS-specific settings of the lower layers (a checkpoint's alpha table, decoder defaults) apply to FOCUS only.

A request that asks ``mode="vcd"`` without an alpha gets VCD's own defaults (alpha 1.0, imagenet+diffusion noise,
noise_scale 0.5, plausibility_beta 0.1) at every entry point; a call's own alpha applies to the mode it asks.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from focus_integrations import DecodingOptions, FocusDecoder, InvalidOptionError, default_model_path
from focus_integrations.options import scope_to_mode

VCD = {"alpha": 1.0, "noise": "imagenet+diffusion", "noise_scale": 0.5, "plausibility_beta": 0.1}
TABLE = {"2": 0.3, "3": 0.5}
FOCUS_LAYER = (
    "focus_config.json",
    {"alpha": TABLE, "noise": "black", "noise_scale": 0.8, "plausibility_beta": 0.2},
)


def mode_fields(options: DecodingOptions) -> dict:
    return {name: getattr(options, name) for name in VCD}


def test_lower_layers_focus_settings_do_not_reach_vcd() -> None:
    assert mode_fields(DecodingOptions.from_layers(FOCUS_LAYER, ("call", {"mode": "vcd"}))) == VCD
    focus = DecodingOptions.from_layers(FOCUS_LAYER, ("call", {}))
    assert (focus.alpha, focus.noise, focus.noise_scale, focus.plausibility_beta) == (
        ((2, 0.3), (3, 0.5)),
        "black",
        0.8,
        0.2,
    )
    # "n-calibrated" is a FOCUS rule: as a lower layer's default it must not break a VCD request ...
    calibrated = ("decoder defaults", {"alpha": "n-calibrated"})
    assert DecodingOptions.from_layers(calibrated, ("call", {"mode": "vcd"})).alpha == 1.0
    # ... while asking for it explicitly with VCD is still an error.
    with pytest.raises(InvalidOptionError, match="FOCUS rule"):
        DecodingOptions.from_layers(("call", {"mode": "vcd", "alpha": "n-calibrated"}))


def test_a_calls_own_values_apply_to_the_mode_it_asks() -> None:
    call = ("call", {"mode": "vcd", "alpha": 2.0, "noise_scale": 0.3})
    chosen = DecodingOptions.from_layers(FOCUS_LAYER, call)
    assert (chosen.alpha, chosen.noise_scale, chosen.noise) == (2.0, 0.3, "imagenet+diffusion")


def test_a_layer_configures_the_mode_in_effect_there() -> None:
    vcd_defaults = ("decoder defaults", {"mode": "vcd", "alpha": 3.0})
    # The decoder's VCD defaults hold for VCD calls, not for a call that switches to FOCUS.
    assert DecodingOptions.from_layers(FOCUS_LAYER, vcd_defaults, ("call", {})).alpha == 3.0
    assert DecodingOptions.from_layers(vcd_defaults, ("call", {"mode": "focus"})).alpha == 0.1
    # A layer that names no mode configures the one set below it (here the checkpoint's VCD).
    layers = [("focus_config.json", {"mode": "vcd"}), ("decoder defaults", {"noise": "gray"}), ("call", {})]
    assert DecodingOptions.from_layers(*layers).noise == "gray"
    assert scope_to_mode([FOCUS_LAYER, ("call", {"mode": "vcd"})]) == [
        ("focus_config.json", {}),
        ("call", {"mode": "vcd"}),
    ]


def test_the_parts_of_one_layer_are_one_users_settings() -> None:
    from focus_integrations.adapters import adapter_options
    from focus_integrations.vocabulary import combine_layers

    # generate_kwargs below named fields or flags: one layer, so its alpha is the alpha of the mode beside it.
    assert DecodingOptions.from_layers(combine_layers({"alpha": 2.0}, {"mode": "vcd"})).alpha == 2.0
    assert DecodingOptions.from_layers(adapter_options({"mode": "vcd"}, {"alpha": 2.0})).alpha == 2.0
    # An adapter's fields are its calls' defaults: a FOCUS alpha there is not a VCD alpha.
    assert DecodingOptions.from_layers(adapter_options({"alpha": 0.3}, None, {"mode": "vcd"})).alpha == 1.0
    assert DecodingOptions.from_layers(adapter_options({"alpha": 0.3}, None, {"max_tokens": 2})).alpha == 0.3


@pytest.fixture(scope="module")
def default_decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(default_model_path())


def images() -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_the_default_models_alpha_table_is_focus_only(default_decoder) -> None:
    assert isinstance(default_decoder.resolve_options().alpha, tuple)  # the bundled per-N FOCUS table
    assert mode_fields(default_decoder.resolve_options(mode="vcd")) == VCD
    out = default_decoder.generate(images(), "What color?", mode="vcd", max_new_tokens=1)
    assert out.settings["rule"] == "vcd" and out.settings["alpha"] == 1.0
    assert "alpha" not in out.settings["sources"]  # VCD's library default, not focus_config.json
    assert (
        default_decoder.generate(images(), "What color?", mode="vcd", alpha=0.5, max_new_tokens=1).settings[
            "alpha"
        ]
        == 0.5
    )


def test_n_calibrated_decoder_default_serves_vcd_requests(default_decoder) -> None:
    decoder = FocusDecoder(default_decoder.model, default_decoder.processor, alpha="n-calibrated")
    assert decoder.resolve_options().alpha == "n-calibrated"
    out = decoder.generate(images(), "What color?", mode="vcd", max_new_tokens=1)
    assert (out.settings["rule"], out.settings["alpha"]) == ("vcd", 1.0)


def test_chat_focus_vcd_gets_vcd_defaults(default_decoder) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.messages import HumanMessage

    from focus_integrations.langchain import ChatFocus

    content = [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images()]
    message = HumanMessage(content=[*content, {"type": "text", "text": "What color?"}])
    for chat, call in (
        (ChatFocus(decoder=default_decoder, max_tokens=1, mode="vcd"), {}),
        (ChatFocus(decoder=default_decoder, max_tokens=1), {"mode": "vcd"}),
        # The adapter's own FOCUS alpha is its default for FOCUS calls, not a VCD alpha.
        (ChatFocus(decoder=default_decoder, max_tokens=1, alpha="n-calibrated"), {"mode": "vcd"}),
    ):
        focus = chat.invoke([message], **call).response_metadata["focus"]
        assert (focus["rule"], focus["alpha"], focus["noise_scale"]) == ("vcd", 1.0, 0.5)
    chat = ChatFocus(decoder=default_decoder, max_tokens=1, mode="vcd", generate_kwargs={"alpha": 2.0})
    assert chat.invoke([message]).response_metadata["focus"]["alpha"] == 2.0


def test_focus_multimodal_llm_vcd_gets_vcd_defaults() -> None:
    pytest.importorskip("llama_index.core")
    from focus_integrations.llama_index import FocusMultiModalLLM

    llm = FocusMultiModalLLM(str(default_model_path()), max_new_tokens=1)
    assert mode_fields(llm.effective_options(mode="vcd")) == VCD
    assert mode_fields(FocusMultiModalLLM(str(default_model_path()), mode="vcd").effective_options()) == VCD


def test_focus_ask_mode_vcd_gets_vcd_defaults(default_decoder, tmp_path, monkeypatch, capsys) -> None:
    from focus_integrations import cli

    paths = []
    for index, image in enumerate(images()):
        paths += ["--image", str(tmp_path / f"{index}.png")]
        image.save(paths[-1])
    seen = []
    generate = FocusDecoder.generate

    def recording(self, *args, **kwargs):
        seen.append(generate(self, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(FocusDecoder, "generate", recording)
    assert cli.main(["ask", "What color?", *paths, "--mode", "vcd", "--max-new-tokens", "1"]) == 0
    assert (seen[0].settings["rule"], seen[0].settings["alpha"]) == ("vcd", 1.0)
    assert seen[0].settings["noise"] == "imagenet+diffusion"
    flags = ["--mode", "vcd", "--generate-kwargs", '{"alpha": 2.0}', "--max-new-tokens", "1"]
    assert cli.main(["ask", "What color?", *paths, *flags]) == 0
    assert (seen[1].settings["rule"], seen[1].settings["alpha"]) == ("vcd", 2.0)


def test_server_extra_body_mode_vcd_gets_vcd_defaults(default_decoder) -> None:
    pytest.importorskip("fastapi")
    from focus_integrations.server.config import Limits
    from focus_integrations.server.protocol import decoding_options

    options = decoding_options({"mode": "vcd", "max_tokens": 1}, Limits(), context_length=512)
    assert mode_fields(default_decoder.resolve_options(**options)) == VCD
