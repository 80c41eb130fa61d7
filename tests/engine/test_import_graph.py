"""The core modules import each other without circles (module-level imports; TYPE_CHECKING and function-level
imports are the documented way to refer back), and every public name still comes from its old module."""

from __future__ import annotations

import ast
from pathlib import Path

import focus_integrations

CORE = Path(focus_integrations.__file__).parent


def module_level_imports(path: Path) -> set[str]:
    """The focus_integrations modules ``path`` imports when it is imported (top-level statements only)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("focus_integrations."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("focus_integrations.")}
    return names


def test_core_modules_import_without_circles() -> None:
    graph = {path.stem: module_level_imports(path) for path in CORE.glob("*.py") if path.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path[path.index(module) :], module))}"
        if module in done or module not in graph:
            return
        for imported in sorted(graph[module]):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_public_decoder_names_still_import_from_their_old_places() -> None:
    from focus_integrations import FocusDecoder, TextStream
    from focus_integrations import decoder as decoder_module

    assert decoder_module.FocusDecoder is FocusDecoder and decoder_module.TextStream is TextStream
    assert decoder_module.FOCUS_CONFIG == "focus_config.json"
    assert callable(decoder_module.empty_device_cache) and callable(decoder_module.TokenChooser)
