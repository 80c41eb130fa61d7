"""The core installs and imports without the frameworks; adapters import lazily."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = (
    "langchain_core",
    "langchain",
    "llama_index",
    "chromadb",
    "fastapi",
    "uvicorn",
    "ray",
    "prometheus_client",
)


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(result.stdout.split())


def test_importing_the_package_loads_no_framework_and_no_torch() -> None:
    loaded = _imported_after("import focus_integrations")
    assert not loaded & {*FRAMEWORKS, "torch", "transformers"}


def test_the_engine_loads_no_framework() -> None:
    loaded = _imported_after(
        "from focus_integrations import FocusDecoder\n"
        "import focus_integrations.cli, focus_integrations.decoder, focus_integrations.vision"
    )
    assert "torch" in loaded
    assert not loaded & set(FRAMEWORKS)


def test_adapters_import_their_framework_only_when_used() -> None:
    loaded = _imported_after("import focus_integrations.langchain, focus_integrations.llama_index")
    assert not loaded & set(FRAMEWORKS)
    loaded = _imported_after("from focus_integrations.langchain import ChatFocus")
    assert "langchain_core" in loaded and "llama_index" not in loaded
