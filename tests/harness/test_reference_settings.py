"""``--protocol reference`` through the REAL engine: what it sets, what the checkpoint's generation_config sets,
the per-request end ids, and the command line's output (one progress bar, the harness's own).

The checkpoint is the tiny LLaVA-OneVision one with a generation_config.json that sets every kind of option
the reference runners leave to ``model.generate``: its values must reach the decode unless the reference sets
them (do_sample, temperature, max_new_tokens: passed explicitly, as the runners do).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from focus_integrations.cli import main
from focus_integrations.decoder import FocusDecoder
from focus_integrations.harness.answer import ask
from focus_integrations.harness.benchmarks import get_benchmark
from focus_integrations.harness.layouts import load_local
from focus_integrations.harness.spec import RowContext

GENERATION_CONFIG = {
    "eos_token_id": [256, 17],  # a second end id the tokenizer does not know: only the config gives it
    "pad_token_id": 257,
    "do_sample": False,
    "temperature": 0.7,
    "top_k": 7,
    "top_p": 0.9,
    "repetition_penalty": 1.05,
    "max_new_tokens": 20,
}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt") / "llava-ov"
    shutil.copytree(tiny_checkpoint("llava_onevision"), folder)
    (folder / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG))
    return folder


class _Spy:
    """The real decoder; records the options each harness call resolves to (then decodes 2 tokens only)."""

    def __init__(self, decoder: FocusDecoder) -> None:
        self.decoder, self.resolved, self.outputs = decoder, [], []

    def generate(self, images=None, prompt=None, *, system=None, **options):
        self.resolved.append(self.decoder.resolve_options(**options))
        out = self.decoder.generate(images, prompt, system=system, **(options | {"max_new_tokens": 2}))
        self.outputs.append(out)
        return out


def test_reference_sets_its_own_options_and_leaves_the_rest_to_generation_config(checkpoint, bench_data):
    table = get_benchmark("winoground")
    protocol = table.protocol("reference")
    data = load_local(table, bench_data("winoground"), {})
    queries = table.queries(data.rows[0], protocol, RowContext("0", data.root, "reference"))
    image_query = next(q for q in queries if q.key == "image_0")
    spy = _Spy(FocusDecoder.from_pretrained(str(checkpoint)))
    for mode in ("vanilla", "focus"):
        ask(spy, table, protocol, "generate", image_query, mode=mode, alpha=0.3, seed=42, options={})
    for options, out in zip(spy.resolved, spy.outputs):
        # The reference's own: generate(do_sample=True, temperature=0.2, max_new_tokens=512), severity 3.
        assert (options.do_sample, options.temperature, options.max_new_tokens) == (True, 0.2, 512)
        assert (options.noise_severity, options.fresh_noise) == (3, True)
        # Everything else is the checkpoint's generation_config, as model.generate() reads it.
        assert (options.top_k, options.top_p, options.repetition_penalty) == (7, 0.9, 1.05)
        assert options.eos_token_id == (256, 17)
        sources = out.settings["sources"]
        for name in ("do_sample", "temperature", "noise_severity"):
            assert sources[name] == "call", name
        for name in ("top_k", "top_p", "repetition_penalty", "eos_token_id"):
            assert sources[name] == "generation_config", name
        assert out.settings["eos_token_id"] == [256, 17]  # the ids this request stops on
    vanilla, focus = spy.resolved
    assert vanilla.mode == "vanilla" and vanilla.multi_image_anyres and not focus.multi_image_anyres
    assert focus.mode == "focus" and focus.alpha == 0.3


def test_eval_prints_one_progress_bar_and_no_loading_bar(checkpoint, bench_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "winoground",
            "--model",
            str(checkpoint),
            "--data",
            str(bench_data("winoground")),
            "--limit",
            "2",
            "--val",
            "none",
            "--alpha",
            "0.3",
            "--max-new-tokens",
            "2",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "Loading weights" not in captured.err and "Loading" not in captured.err
    bars = [part for part in captured.err.replace("\r", "\n").splitlines() if "|" in part]
    assert bars, captured.err
    assert all(bar.startswith("winoground test:") for bar in bars), bars  # the harness's own, nothing else
    assert any("4/4" in bar and "<" in bar for bar in bars)  # rows x modes, with its ETA/elapsed field
    assert "== protocol reference ==" in captured.out


def test_focus_one_image_contrasts_the_clean_row_with_the_noise_row(tiny_checkpoint):
    """The reference runners that add noise rows decode a one-image query as a batch of two, [noise] and
    [clean], and their sampler contrasts it: z_1 - alpha * z_0. Checked against the slow construction."""
    from engine.reference import reference_focus_greedy
    from PIL import Image

    decoder = FocusDecoder.from_pretrained(str(tiny_checkpoint("qwen2_5_vl")))
    image = [Image.new("RGB", (40, 30), (200, 30, 30))]
    prompt = "What colour is the shape?"
    greedy = dict(do_sample=False, max_new_tokens=4, alpha=0.7, seed=7)
    one = decoder.generate(image, prompt, mode="focus", focus_one_image=True, **greedy)
    expected, _ = reference_focus_greedy(
        decoder.model,
        decoder.processor,
        image,
        prompt,
        alpha=0.7,
        seed=7,
        max_new_tokens=4,
        banned=decoder.banned_token_ids,
    )
    assert one.settings["rule"] == "focus" and one.settings["n_rows"] == 2
    assert one.token_ids == expected[: len(one.token_ids)]
    plain = decoder.generate(image, prompt, mode="focus", **greedy)  # the default: FOCUS skipped at N = 1
    assert plain.settings["rule"] == "vanilla" and plain.settings["n_rows"] == 1
    assert plain.token_ids == decoder.generate(image, prompt, mode="vanilla", **greedy).token_ids
    assert one.token_ids != plain.token_ids  # the contrast changes the answer of this random model


def test_reference_runs_focus_on_one_image_rows_only_where_the_runners_add_noise_rows():
    noised = ("mirb", "mantis", "muirbench", "mmlongbench", "vinoground")
    for name in noised + ("winoground", "vismin", "info-leakage"):
        protocol = get_benchmark(name).protocol("reference")
        assert protocol.engine_options("vanilla")["multi_image_anyres"] is True, name
        assert protocol.engine_options("focus").get("focus_one_image", False) is (name in noised), name
        assert any("one-image rows" in quirk for quirk in protocol.quirks) is (name in noised), name
        strict = get_benchmark(name).protocols.get("strict")
        assert strict is None or strict.mode_generation == {}, name  # strict: every mode fed alike, N=1 plain
