#!/usr/bin/env bash
# The GPU suite (see benchmarks/gpu_suite.py): real-size FOCUS vs vanilla vs reference at N = 2, 4, 8, 16,
# batched vs serial engine, and the serving load test at 8 and 32 clients; under 8 minutes on one GPU.
#   benchmarks/gpu_suite.sh                  # on a GPU machine; report in gpu_suite_report/
#   benchmarks/gpu_suite.sh --tiny           # CPU smoke run of the same code path
# Extra arguments go to gpu_suite.py (--arch, --n, --tokens, --budget, --skip-serve, --out ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PYTHON" benchmarks/gpu_suite.py --out "${GPU_SUITE_OUT:-gpu_suite_report}" "$@"
