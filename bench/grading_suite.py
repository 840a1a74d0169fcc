"""Write bench/grading_suite.jsonl, the labelled suite of competition answer forms (long responses), from
tests/grading/competition_form_cases.py; bench/grading_bench.py grades it with mathsft and math-verify.

    .venv/bin/python bench/grading_suite.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "grading"))

from competition_form_cases import build_suite  # noqa: E402

SUITE = ROOT / "bench" / "grading_suite.jsonl"


def main() -> None:
    rows = build_suite()
    assert len({(r["response"], r["gold"]) for r in rows}) == len(rows), "inputs must be distinct"
    SUITE.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = Counter((r["category"], r["label"]) for r in rows)
    print(f"wrote {len(rows)} pairs to {SUITE}")
    for category in dict.fromkeys(r["category"] for r in rows):
        print(f"  {category:20s} right {counts[category, True]:3d}  wrong {counts[category, False]:3d}")


if __name__ == "__main__":
    main()
