"""Store a leakage-lab run next to the default model: the alphas chosen on val, the stated accuracy, the run.

    focus eval leakage --out runs/lab                       # the full lab on the shipped default model
    python scripts/write_lab_summary.py runs/lab/leakage.json

Writes ``lab_summary.json`` (``alpha``: the per-N table the lab chose on val, which ``focus_config.json``
ships as the model's default; ``single_alpha``: the best one alpha for every N on val, the paper's protocol,
which ``focus demo`` shows as "FOCUS"; ``stated``: the accuracy the model card promises, as lower bounds: the
Wilson 95% lower bound of the measured single-image accuracy rounded down to 0.05, checked by
tests/lab/test_default_model.py on held-out images; ``lab``: the whole run) and ``focus_config.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[1] / "focus_integrations" / "default_model"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("lab_json", type=Path)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    args = parser.parse_args(argv)
    lab = json.loads(args.lab_json.read_text())
    if lab["alpha_validation"].get("split") != "val":
        raise SystemExit("the lab run must have chosen its alphas on val (no --alpha)")
    stated = {
        f"single_image_{attr}_accuracy_min": math.floor(p["ci95"][0] * 20) / 20
        for attr, p in lab["single_image"].items()
    }
    table = dict(lab["alpha_by_n"])
    summary = {
        "alpha": table,
        "alpha_chosen_on": "val",
        "single_alpha": lab["alpha_validation"]["single_alpha"],
        "stated": stated,
        "lab": lab,
    }
    (args.model_dir / "lab_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.model_dir / "focus_config.json").write_text(json.dumps({"alpha": table}, indent=1) + "\n")
    print(
        f"wrote {args.model_dir}: alpha per N {table}, single alpha {summary['single_alpha']}, stated {stated}"
    )


if __name__ == "__main__":
    main()
