"""Store a leakage-lab run next to the default model: the alpha chosen on val, the stated accuracy, the run.

    focus eval leakage --out runs/lab                       # the full lab on the shipped default model
    python scripts/write_lab_summary.py runs/lab/leakage.json

``stated`` holds the accuracy the model card promises, as lower bounds: the Wilson 95% lower bound of the
measured single-image accuracy rounded down to 0.05. tests/lab/test_default_model.py checks them on held-out
images; ``focus demo`` uses ``alpha``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "focus_integrations" / "default_model" / "lab_summary.json"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("lab_json", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    lab = json.loads(args.lab_json.read_text())
    stated = {
        f"single_image_{attr}_accuracy_min": math.floor(p["ci95"][0] * 20) / 20
        for attr, p in lab["single_image"].items()
    }
    summary = {"alpha": lab["alpha"], "alpha_chosen_on": "val", "stated": stated, "lab": lab}
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out}: alpha {lab['alpha']}, stated {stated}")


if __name__ == "__main__":
    main()
