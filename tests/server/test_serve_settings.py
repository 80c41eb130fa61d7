"""``focus serve`` flags and config-file args -> ServeSettings: the library's loading options, checked early."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from focus_integrations.errors import InvalidOptionError
from focus_integrations.server.cli import ServeSettings, add_serve_commands, settings_from_args

REPO = Path(__file__).resolve().parents[2]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_loading_flags_are_the_librarys_loading_options() -> None:
    settings = settings_from_args(
        _args(
            "--model",
            "m",
            "--device",
            "cpu",
            "--dtype",
            "bfloat16",
            "--attn-implementation",
            "sdpa",
            "--quantization-config",
            '{"load_in_4bit": true}',
            "--alpha",
            "n-calibrated",
        )
    )
    assert settings.loading == {
        "device": "cpu",
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "quantization_config": {"load_in_4bit": True},
    }
    assert settings.defaults == {"alpha": "n-calibrated"}
    assert settings_from_args(_args()).loading == {}  # absent flags are not set: the checkpoint decides


def test_config_file_args_take_loading_options_at_the_top_level() -> None:
    config = yaml.safe_load((REPO / "examples" / "serve_config.yaml").read_text())
    settings = ServeSettings.from_dict(config["applications"][0]["args"])
    assert settings.loading == {"dtype": "bfloat16", "device": "cuda"}
    assert settings.engine == "batched" and settings.limits["max_queued_requests"] == 64
    assert ServeSettings.from_dict({"loading": {"revision": "main"}, "device": "cpu"}).loading == {
        "revision": "main",
        "device": "cpu",
    }


def test_bad_settings_fail_in_one_line() -> None:
    with pytest.raises(InvalidOptionError, match="unknown serve setting"):
        ServeSettings.from_dict({"modle": "x"})
    with pytest.raises(InvalidOptionError, match="unknown loading option"):
        ServeSettings(loading={"devcie": "cpu"})


def test_focus_serve_exposes_the_join_policy_and_defaults_to_step_joining() -> None:
    from focus_integrations.server.cli import build_engine
    from focus_integrations.testing import tiny_checkpoint

    model = str(tiny_checkpoint("qwen2_5_vl"))
    assert settings_from_args(_args("--model", model)).join is None  # not set: the engine's default
    for flags, join in (((), "step"), (("--join", "batch"), "batch"), (("--join", "step"), "step")):
        engine, _ = build_engine(settings_from_args(_args("--model", model, *flags)))
        try:
            assert engine.join == join
        finally:
            engine.close()
    with pytest.raises(InvalidOptionError, match="batched engine only"):
        settings_from_args(_args("--engine", "serial", "--join", "batch"))
    with pytest.raises(InvalidOptionError, match="join must be one of"):
        ServeSettings(join="continuous")
    with pytest.raises(SystemExit):  # argparse refuses other policies
        _args("--join", "sometimes")
