"""Fixtures for the ChatFocus tests: a tiny real Qwen2.5-VL checkpoint, images, and scripted replies.

Scripted replies: a random-weight model writes junk, so tests that need a *particular* answer (a tool call,
a JSON object) replace only the engine's token choice (``focus_integrations.decoder.TokenChooser``) with one
that emits the tokens of a scripted reply. Everything else is the real engine on a real checkpoint: chat
template rendering (with tools), image loading, the N+1 masked rows, the batched prefill and every decode
step (the scripted chooser receives the real combined logits), detokenisation, stop strings, usage. The
script sees the decoded prompt, so tests can assert on what the model was shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from focus_integrations.langchain import ChatFocus
from focus_integrations.logits import TokenChooser

Script = Callable[[str], str]


@pytest.fixture(scope="session")
def qwen_path(tiny_checkpoint: Callable[..., Path]) -> str:
    return str(tiny_checkpoint("qwen2_5_vl"))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """One intra-op thread while these tests run (restored after each).

    On a small shared CPU box, two OpenMP threads contending with other processes made each decode step of
    the tiny model about 10x slower than one thread (measured: 1.2 s vs 0.1 s per 32-token call).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def llm(qwen_path: str) -> ChatFocus:
    """Greedy, short answers, fixed noise seed (so repeated calls are comparable); instances share one
    decoder (loaded once per session)."""
    return ChatFocus(model=qwen_path, max_tokens=8, seed=0)


@pytest.fixture
def image_files(tmp_path: Path) -> dict[str, Path]:
    """Three small product photos on disk, different colours and sizes."""
    paths = {}
    for name, color, size in (
        ("red", "red", (32, 24)),
        ("green", "green", (28, 28)),
        ("blue", "blue", (24, 32)),
    ):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", size, color).save(path)
        paths[name] = path
    return paths


@dataclass
class ScriptLog:
    """What the scripted model was shown: the decoded prompt of every request, and the combined logits."""

    prompts: list[str] = field(default_factory=list)
    logits_seen: int = 0


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, llm: ChatFocus) -> Callable[[Script | str], ScriptLog]:
    """``scripted(reply_or_script)``: from now on the model answers with the scripted text."""

    def install(script: Script | str) -> ScriptLog:
        decoder = llm.focus_decoder
        tokenizer = decoder.tokenizer
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert eos in decoder.eos_token_ids
        log = ScriptLog()
        reply_for: Script = (lambda _prompt: script) if isinstance(script, str) else script

        class ScriptedChooser(TokenChooser):
            """Stands in for TokenChooser: scripted tokens instead of argmax. Under a grammar constraint
            (response_format, a required tool call) every scripted token must be one the grammar allows:
            a script that breaks it raises, as the real chooser could never produce it."""

            def __init__(
                self, options: Any, generator: torch.Generator | None = None, constraint: Any = None
            ):
                super().__init__(options, generator, constraint)
                self.tokens: list[int] | None = None
                self.step = 0

            def __call__(self, combined: torch.Tensor, sequence: torch.Tensor) -> int:
                assert combined.ndim == 1 and combined.shape[0] >= len(tokenizer)  # real combined logits
                log.logits_seen += 1
                if self.tokens is None:
                    prompt = tokenizer.decode(sequence.tolist())
                    log.prompts.append(prompt)
                    reply = reply_for(prompt)
                    # A forced answer start (tool_choice) already ends the prompt: the script continues after it.
                    forced = max(
                        (n for n in range(len(reply), 0, -1) if prompt.endswith(reply[:n])), default=0
                    )
                    reply = reply[forced:]
                    self.tokens = tokenizer(reply, add_special_tokens=False)["input_ids"] + [eos]
                token = self.tokens[min(self.step, len(self.tokens) - 1)]
                self.step += 1
                if self.constraint is not None:
                    if self.constraint.finished:  # the grammar ended the answer: the script's rest is moot
                        return eos
                    self.constraint.advance(token)
                return token

        monkeypatch.setattr("focus_integrations.decoder.TokenChooser", ScriptedChooser)
        return log

    return install
