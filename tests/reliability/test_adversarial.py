"""Property-based adversarial tests over every entry point (hypothesis, derandomized, budgeted).

Each drawn case must end as a valid answer or a documented FocusError within its deadline; a bad input must
never be accepted; an ingest must never lose a good image to a bad neighbour. Failures that belong to another
package and are still open are listed in ``adversarial.KNOWN_OPEN`` (and on FINDINGS.md); any other failure
fails the test. ``scripts/reliability_report.py`` runs the same cases at full size and writes the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

from focus_integrations import FocusDecoder  # noqa: E402
from focus_integrations.testing import adversarial, adversarial_cli, adversarial_serving  # noqa: E402
from focus_integrations.testing.adversarial import Tally, known_open, quiet  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> str:
    return str(tiny_checkpoint("qwen2_5_vl"))


@pytest.fixture(scope="module")
def decoder(checkpoint: str) -> FocusDecoder:
    return FocusDecoder.from_pretrained(checkpoint)


def _check(tally: Tally, minimum: int) -> None:
    assert len(tally.outcomes) >= minimum  # the cases really ran
    unexpected = [o for o in tally.failures() if known_open(o) is None]
    assert not unexpected, "\n".join(
        f"{o.entry}: {o.case} [{o.label}] -> {o.result} {o.detail}" for o in unexpected
    )
    for outcome in tally.outcomes:
        assert outcome.seconds < adversarial.CASE_DEADLINE_S


def test_fuzzed_png_jpeg_gif_bytes_load_or_raise_image_load_error() -> None:
    tally = Tally()
    with quiet():
        adversarial.run_images(tally, examples=40)
    _check(tally, 40)
    assert {o.result for o in tally.outcomes} == {"answer", "error"}  # both kinds of case were drawn


@pytest.mark.slow
def test_engine_options_and_messages(decoder: FocusDecoder) -> None:
    tally = Tally()
    with quiet():
        adversarial.run_engine(decoder, tally, examples=15)
    _check(tally, 30)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("framework", "runner"),
    [("langchain_core", adversarial.run_langchain), ("llama_index.core", adversarial.run_llama_index)],
    ids=["ChatFocus", "FocusMultiModalLLM"],
)
def test_adapters(decoder: FocusDecoder, framework: str, runner) -> None:
    pytest.importorskip(framework)
    tally = Tally()
    with quiet():
        runner(decoder, tally, examples=10)
    _check(tally, 10)


@pytest.mark.slow
def test_image_store_ingest_and_query(tmp_path: Path, minilm) -> None:
    from focus_integrations.store import ImageStore

    tally = Tally()
    store = ImageStore(tmp_path / "store", embedder=minilm, media_dir=tmp_path / "media")
    with quiet():
        adversarial.run_store(store, tmp_path, tally, examples=12)
    _check(tally, 24)
    assert sum(o.lost_good for o in tally.outcomes) == 0


@pytest.mark.slow
def test_cli_ask(checkpoint: str, tmp_path: Path) -> None:
    tally = Tally()
    with quiet():
        adversarial.run_cli(checkpoint, tmp_path, tally, examples=4)
    _check(tally, 4)


@pytest.mark.slow
def test_every_bad_option_is_refused_at_every_place_options_are_given(decoder: FocusDecoder) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    tally = Tally()
    with quiet():
        adversarial.run_every_bad_option(decoder, tally)
    per_value = sum(len(values) for values in adversarial.BAD_OPTIONS.values())
    _check(tally, 6 * per_value)
    assert {o.result for o in tally.outcomes} == {"error"}


def test_a_bad_request_in_a_batch_fails_alone(decoder: FocusDecoder) -> None:
    tally = Tally()
    with quiet():
        adversarial_serving.run_batch(decoder, tally, examples=6)
    _check(tally, 12)
    assert {o.entry for o in tally.outcomes} == {"generate_batch", "BatchEngine.submit"}


def test_the_batch_judge_counts_a_lost_good_answer(decoder: FocusDecoder, monkeypatch) -> None:
    """The batch cases can fail: a batch that answers its good requests wrongly loses them."""
    real = decoder.generate_batch

    def wrong_for_the_good(requests, **kwargs):
        outputs = real(requests, **kwargs)
        for out in outputs:
            if hasattr(out, "token_ids"):
                out.token_ids = [*out.token_ids, 0]
        return outputs

    monkeypatch.setattr(decoder, "generate_batch", wrong_for_the_good)
    tally = Tally()
    with quiet():
        adversarial_serving.run_batch(decoder, tally, examples=2)
    batch = [o for o in tally.outcomes if o.entry == "generate_batch"]
    assert batch and all(o.lost_good == 2 and o.failed for o in batch)


@pytest.mark.slow
def test_the_openai_server_refuses_bad_requests_with_openai_errors(
    decoder: FocusDecoder, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    tally = Tally()
    with quiet():
        adversarial_serving.run_server(decoder, tmp_path, tally)
    _check(tally, 200)
    for outcome in tally.outcomes:
        assert outcome.seconds < adversarial_serving.SERVER_DEADLINE_S


@pytest.mark.slow
def test_focus_eval_refuses_bad_data_and_options_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    tally = Tally()
    with quiet():
        adversarial_cli.run_eval_cli(tmp_path, tally)
    _check(tally, 40)


@pytest.mark.slow
def test_focus_index_query_and_serve_refuse_bad_arguments_in_one_line(
    checkpoint: str, tmp_path: Path, minilm
) -> None:
    tally = Tally()
    with quiet():
        adversarial_cli.run_store_cli(tmp_path, tally)
        adversarial_cli.run_serve_cli(checkpoint, tally, only=3)  # a process each: the report runs them all
    _check(tally, 20)
    assert {o.entry for o in tally.outcomes} == {
        "CLI (focus index)",
        "CLI (focus query)",
        "CLI (focus serve)",
    }


def test_the_engine_refuses_bad_call_arguments(decoder: FocusDecoder) -> None:
    tally = Tally()
    with quiet():
        adversarial_serving.run_call_arguments(decoder, tally)
    _check(tally, 20)
