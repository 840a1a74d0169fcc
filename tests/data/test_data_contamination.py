"""n-gram decontamination: planted overlaps are found, clean sets are clean, real GSM8K overlaps are known."""

from __future__ import annotations

import json

from conftest import shared_file

from mathsft.data import Problem, SFTExample, check_contamination, load_problems

EVAL = [
    Problem(
        "e/0", "A train leaves the station at noon and travels at sixty miles per hour toward the city.", "1"
    ),
    Problem("e/1", "Compute $\\dbinom{8}{4}$.", "70"),
]


def test_planted_overlap_is_found_with_an_example():
    train = [
        Problem(
            "t/0",
            "Yesterday a train leaves the station at noon and travels at sixty miles per hour toward the sea.",
            "2",
        ),
        Problem("t/1", "How many legs do three spiders have?", "24"),
        Problem("t/2", "compute $\\dbinom{8}{4}$ .", "70"),  # short text: compared whole, after normalizing
    ]
    report = check_contamination(train, {"toy": EVAL})
    assert report.contaminated == {"toy": 2} and report.contaminated_total == 2
    assert report.eval_hits == {"toy": 2} and report.eval_counts == {"toy": 2}
    assert not report.clean
    assert report.examples[0] == {
        "train_id": "t/0",
        "eval_set": "toy",
        "eval_id": "e/0",
        "shared": "a train leaves the station at noon and travels at sixty miles per",
    }
    assert json.loads(json.dumps(report.to_dict()))["contaminated_total"] == 2


def test_clean_sets_and_sft_prompts():
    train = [
        SFTExample(
            "s/0", [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
        )
    ]
    report = check_contamination(train, EVAL)  # a plain list is grouped by source
    assert report.clean and report.contaminated_total == 0 and report.eval_counts == {"eval": 2}


def test_real_gsm8k_train_overlaps_test_in_a_few_known_places():
    train = load_problems("gsm8k", shared_file("gsm8k/train.jsonl"))
    test = load_problems("gsm8k", shared_file("gsm8k/test.jsonl"))
    math500 = load_problems("math500", shared_file("math500/test.jsonl"))
    report = check_contamination(train, {"math500": math500, "gsm8k": test})
    assert report.train_count == 7473 and report.eval_counts == {"math500": 500, "gsm8k": 1319}
    assert report.contaminated == {"math500": 0, "gsm8k": 4}
    assert {"train_id": "gsm8k/train/20", "eval_id": "gsm8k/test/632"}.items() <= report.examples[0].items()
    assert check_contamination(math500, {"math500": math500}).contaminated_total == 500
