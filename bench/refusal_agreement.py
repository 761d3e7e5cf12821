"""Agreement of the rule-based refusal classifier (gate.refusal) with XSTest's human labels, per model.

Reads XSTest's labelled completions (2,250 replies of five models to its 450 prompts, each labelled full compliance,
full refusal or partial refusal by the XSTest authors); partial refusals count as refusals. Prints a markdown table:
agreement, precision and recall for refusal, per model and over all.

    python bench/refusal_agreement.py [path/to/xstest_labelled_completions.jsonl]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gate.refusal import Agreement, agreement


def table(rows: list[dict[str, str]]) -> dict[str, Agreement]:
    """Agreement per model, and over all replies under 'all'."""
    models = sorted({row["model"] for row in rows})
    result = {model: agreement(r for r in rows if r["model"] == model) for model in models}
    result["all"] = agreement(rows)
    return result


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/refusal_agreement.py PATH/xstest_labelled_completions.jsonl")
    path = Path(sys.argv[1])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    print("| model | replies | human refusals | agreement | precision (refusal) | recall (refusal) |")
    print("|---|---:|---:|---:|---:|---:|")
    for model, a in table(rows).items():
        refusals = a.true_pos + a.false_neg
        print(f"| {model} | {a.n} | {refusals} | {a.agreement:.3f} | {a.precision:.3f} | {a.recall:.3f} |")


if __name__ == "__main__":
    main()
