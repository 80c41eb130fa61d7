"""Remote images: the timeout is a deadline for the whole fetch, whatever a hostile loopback server does."""

from __future__ import annotations

import threading
import time

import pytest

from focus_integrations import FocusError, InvalidOptionError, RemoteImageError
from focus_integrations.images import REMOTE_MAX_REDIRECTS, RemoteImages, load_image
from focus_integrations.testing.hostile_http import hostile_http_server
from focus_integrations.testing.hostile_http import png_bytes as hostile_png

TIMEOUT = 1.0
DRIP_INTERVAL = 0.2  # the 70-byte PNG drips for ~14 s; the slow headers (10 kB) for ~2000 s; /silent forever
# How late a call may end after its deadline: the deadline itself again, for a machine so loaded that the
# waiting thread wakes late. Still far below what a call WITHOUT a deadline takes here (a per-read timeout of
# 1 s never fires on a 0.2 s drip: the call lasts the whole drip, >= 14 s), so the check keeps its meaning.
LATE_MARGIN = 2 * TIMEOUT
NO_DEADLINE_S = len(hostile_png()) * DRIP_INTERVAL
assert TIMEOUT + LATE_MARGIN < NO_DEADLINE_S / 3


@pytest.fixture(scope="module")
def server() -> str:
    with hostile_http_server(drip_interval=DRIP_INTERVAL) as url:
        yield url


def _timed(call):
    start = time.monotonic()
    try:
        return call(), time.monotonic() - start
    except FocusError as err:
        return err, time.monotonic() - start


@pytest.mark.parametrize("path", ["/drip", "/slow-headers", "/silent"])
def test_a_stalling_server_cannot_hold_the_call_past_the_deadline(server: str, path: str) -> None:
    outcome, seconds = _timed(lambda: load_image(server + path, allow_remote=True, timeout=TIMEOUT))
    assert isinstance(outcome, RemoteImageError), outcome
    assert "deadline" in str(outcome)
    assert TIMEOUT * 0.9 <= seconds < TIMEOUT + LATE_MARGIN  # it waited for the deadline, and ended at it


def test_the_helper_thread_is_gone_soon_after_the_deadline(server: str) -> None:
    load_image(server + "/image.png", allow_remote=True)  # warm up
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(RemoteImageError):
        load_image(server + "/slow-headers", allow_remote=True, timeout=0.5)
    # Its sockets are shut down at the deadline, so it ends at once; a loaded machine may wake it late.
    give_up = time.monotonic() + LATE_MARGIN
    while True:
        lingering = [
            t for t in threading.enumerate() if t.ident not in before and t.name == "focus-image-fetch"
        ]
        if not lingering or time.monotonic() > give_up:
            break
        time.sleep(0.05)
    assert not lingering


def test_good_answers_and_short_redirect_chains_still_load(server: str) -> None:
    assert load_image(server + "/image.png", allow_remote=True).size == (8, 8)
    chain = f"{server}/chain/{REMOTE_MAX_REDIRECTS - 1}"
    assert load_image(chain, allow_remote=RemoteImages(timeout=5.0)).size == (8, 8)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/loop", "redirect"),
        (f"/chain/{REMOTE_MAX_REDIRECTS + 3}", "redirect"),
        ("/to-file", "refused a redirect"),
        ("/huge-length", "announces"),
        ("/endless", "larger than"),
        ("/not-found", "404"),
        ("/not-an-image", "cannot decode"),
    ],
)
def test_hostile_answers_are_clear_remote_errors(server: str, path: str, reason: str) -> None:
    outcome, seconds = _timed(
        lambda: load_image(server + path, allow_remote=RemoteImages(timeout=3.0, max_bytes=1 << 20))
    )
    assert isinstance(outcome, FocusError) and reason in str(outcome), outcome
    assert seconds < 3.0 + LATE_MARGIN


def test_the_engine_uses_the_limits_it_is_given(server: str, tiny_checkpoint) -> None:
    from focus_integrations import FocusDecoder

    decoder = FocusDecoder.from_pretrained(
        tiny_checkpoint("qwen2_5_vl"), allow_remote_images=RemoteImages(timeout=TIMEOUT)
    )
    messages = [{"role": "user", "content": [{"type": "image", "url": server + "/drip"}, "What?"]}]
    outcome, seconds = _timed(lambda: decoder.generate(messages=messages, max_new_tokens=2))
    assert isinstance(outcome, RemoteImageError) and seconds < TIMEOUT + LATE_MARGIN


@pytest.mark.parametrize(
    "limits", [{"timeout": "1"}, {"timeout": 0}, {"timeout": float("nan")}, {"max_bytes": -5}]
)
def test_bad_limits_are_invalid_options(limits) -> None:
    with pytest.raises(InvalidOptionError):
        RemoteImages(**limits)
    with pytest.raises(InvalidOptionError):
        load_image("http://127.0.0.1:9/x.png", allow_remote=True, **limits)
