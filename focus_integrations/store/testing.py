"""Test helpers for the store: tiny CLIP / SigLIP checkpoints built offline, and a loopback Chroma server.

The checkpoints are random (their embeddings carry no meaning) but real: saved with ``save_pretrained`` and
loaded back through :class:`~focus_integrations.store.embedders.CLIPEmbedder` /
:class:`~focus_integrations.store.embedders.SiglipEmbedder` exactly as a downloaded model would be.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_SPECIALS = ("<bos>", "<eos>", "<pad>")


def _byte_level_tokenizer(max_length: int):  # -> PreTrainedTokenizerFast
    """A byte-level BPE with no merges: every byte is a token. Adds <bos> ... <eos> like CLIP's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {symbol: index for index, symbol in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    for special in _SPECIALS:
        vocab[special] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        model_max_length=max_length,
    )


def _tower(**extra: int) -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, **extra)


def build_tiny_clip(folder: str | os.PathLike[str], *, seed: int = 0, projection_dim: int = 16) -> Path:
    """Save a random ~100k-parameter ``CLIPModel`` with tokenizer and PIL image processor (32 px) in ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder = Path(folder)
    tokenizer = _byte_level_tokenizer(max_length=32)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = CLIPConfig(
        text_config=_tower(vocab_size=len(tokenizer), max_position_embeddings=32, **ids),
        vision_config=_tower(image_size=32, patch_size=8),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


def build_tiny_siglip(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Save a random tiny ``SiglipModel`` (width 32, 32 px images, 16-token texts) in ``folder``."""
    import torch
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    folder = Path(folder)
    tokenizer = _byte_level_tokenizer(max_length=16)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = SiglipConfig(
        text_config=_tower(vocab_size=len(tokenizer), max_position_embeddings=16, **ids),
        vision_config=_tower(image_size=32, patch_size=8),
    )
    torch.manual_seed(seed)
    SiglipModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def chroma_executable() -> str:
    """The ``chroma`` CLI of the running environment (the one installed with chromadb)."""
    beside_python = Path(sys.executable).with_name("chroma")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("chroma")
    if found is None:
        raise FileNotFoundError("the 'chroma' command (installed with chromadb) is not on PATH")
    return found


class ChromaServerProcess:
    """A ``chroma run --path PATH`` process on loopback that tests can stop, freeze and restart."""

    def __init__(
        self, path: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.path = Path(path)
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = self.path.with_name(self.path.name + f".chroma-{self.port}.log")

    def start(self, startup_timeout: float = 60.0) -> str:
        import httpx

        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    chroma_executable(),
                    "run",
                    "--path",
                    str(self.path),
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"chroma server exited with {self.process.returncode}: "
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"chroma server on {self.url} gave no heartbeat in {startup_timeout} s")
            time.sleep(0.1)

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing ever answers (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s); a frozen server is thawed first so that it can exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> str:
        self.stop()
        return self.start()


@contextlib.contextmanager
def chroma_server(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[str]:
    """Run ``chroma run --path PATH`` on loopback; yield its URL; stop it (SIGTERM, then SIGKILL) on exit."""
    server = ChromaServerProcess(path, host=host, port=port)
    try:
        yield server.start(startup_timeout)
    finally:
        server.stop()
