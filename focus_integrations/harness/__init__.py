"""The evaluation harness: ``focus eval <benchmark>`` for the seven benchmarks of the FOCUS reference code
(Winoground, VisMin, Mantis-Eval, MuirBench, MIRB, Vinoground, MMLongBench) and its leakage measure.

One table per benchmark (``benchmarks/<name>.py``: data layout, protocols, row -> queries, scores), run by one
runner (``runner.py``). Needs the ``eval`` extra (Hugging Face ``datasets``; matplotlib for plots). See
docs/reproduce.md.
"""
