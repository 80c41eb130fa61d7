"""The benchmark tables, by CLI name (``focus eval <name>``)."""

from __future__ import annotations

from focus_integrations.errors import InvalidOptionError
from focus_integrations.harness.spec import Benchmark


def benchmarks() -> dict[str, Benchmark]:
    from focus_integrations.harness.benchmarks import (
        info_leakage,
        mantis,
        mirb,
        mmlongbench,
        muirbench,
        vinoground,
        vismin,
        winoground,
    )

    tables = (winoground, vismin, mantis, muirbench, mirb, vinoground, mmlongbench, info_leakage)
    return {module.BENCHMARK.name: module.BENCHMARK for module in tables}


BENCHMARK_NAMES = (
    "winoground",
    "vismin",
    "mantis",
    "muirbench",
    "mirb",
    "vinoground",
    "mmlongbench",
    "info-leakage",
)


def get_benchmark(name: str) -> Benchmark:
    tables = benchmarks()
    if name not in tables:
        raise InvalidOptionError(f"unknown benchmark {name!r}; choose one of {', '.join(tables)}")
    return tables[name]
