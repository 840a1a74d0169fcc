"""Pure parts of the traces stage: cleaning, selection, the durable sample log, seeds."""

from __future__ import annotations

import json

import pytest

from mathsft.errors import DataError
from mathsft.traces.cleaning import clean_trace, drop_lines, normalize_final_answer, split_think, unbox
from mathsft.traces.config import DEFAULT_DROP_PATTERNS, TracesConfig
from mathsft.traces.run import sample_seed
from mathsft.traces.selection import select_problem
from mathsft.traces.store import SampleLog

LINE = r"The final answer is $\boxed{{answer}}$."


# -- cleaning ------------------------------------------------------------------------------------


def test_split_think_inline_lone_close_and_unclosed():
    assert split_think("<think>a\nb</think>\n\nAnswer 5") == ("a\nb", "Answer 5")
    assert split_think("draft</think>final") == ("draft", "final")  # template opened <think>
    assert split_think("<think>still thinking") == ("still thinking", "")
    assert split_think("  plain  ") == (None, "plain")


def test_instruction_echo_lines_are_dropped():
    text = "I will put the final answer in \\boxed{}.\n16 - 7 = 9\nLet me output the answer now.\nDone"
    cleaned, dropped = drop_lines(text, DEFAULT_DROP_PATTERNS)
    assert cleaned == "16 - 7 = 9\nDone" and dropped == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16 - 7 = 9\n#### 9", "16 - 7 = 9\n\nThe final answer is $\\boxed{9}$."),
        ("16 - 7 = 9\nThe answer is $\\boxed{9}$.", "16 - 7 = 9\n\nThe final answer is $\\boxed{9}$."),
        ("so 16 - 7 = \\boxed{9}", "so 16 - 7 = 9\n\nThe final answer is $\\boxed{9}$."),
        ("She has 9 left.", "She has 9 left.\n\nThe final answer is $\\boxed{9}$."),
    ],
)
def test_final_answer_is_one_normalized_boxed_line(text, expected):
    assert normalize_final_answer(text, "9", LINE) == expected


def test_unbox_handles_nested_braces():
    assert unbox(r"x = \boxed{\frac{1}{2}} and \boxed{3}") == r"x = \frac{1}{2} and 3"


def test_clean_trace_keeps_or_strips_reasoning():
    response = "<think>Try 4+5.\nI will put the final answer in \\boxed{}.</think>\n4+5=9\n#### 9"
    kept = clean_trace(
        response, None, "9", think="keep", drop_patterns=DEFAULT_DROP_PATTERNS, answer_line=LINE
    )
    assert kept == "<think>\nTry 4+5.\n</think>\n\n4+5=9\n\nThe final answer is $\\boxed{9}$."
    stripped = clean_trace(response, None, "9", think="strip", answer_line=LINE)
    assert stripped == "4+5=9\n\nThe final answer is $\\boxed{9}$."
    # DeepSeek's separate reasoning channel
    channel = clean_trace("#### 9", "Work it out", "9", think="keep", answer_line=LINE)
    assert channel.startswith("<think>\nWork it out\n</think>")


# -- selection -----------------------------------------------------------------------------------


def rows(*specs):
    """specs: (correct, finish_reason) per sample index."""
    return [{"sample_index": i, "correct": c, "finish_reason": f} for i, (c, f) in enumerate(specs)]


def test_truncated_correct_samples_are_never_accepted():
    r = rows((True, "length"), (True, "stop"), (False, "stop"))
    sel = select_problem(r, {0: "a", 1: "b"})
    assert [x["sample_index"] for x in sel.accepted] == [1]
    assert sel.rejected == {"truncated": 1, "below_threshold": 1}
    assert sel.pass_rate == pytest.approx(2 / 3)


def test_keep_first_shortest_and_cap():
    r = rows((True, "stop"), (True, "stop"), (True, "stop"))
    targets = {0: "long answer", 1: "short", 2: "medium one"}
    assert [x["sample_index"] for x in select_problem(r, targets, keep="first").accepted] == [0]
    assert [x["sample_index"] for x in select_problem(r, targets, keep="shortest").accepted] == [1]
    capped = select_problem(r, targets, max_per_problem=2)
    assert [x["sample_index"] for x in capped.accepted] == [0, 1] and capped.rejected == {
        "max_per_problem": 1
    }


def test_identical_targets_are_merged():
    r = rows((True, "stop"), (True, "stop"))
    sel = select_problem(r, {0: "same", 1: "same"})
    assert len(sel.accepted) == 1 and sel.rejected == {"duplicate": 1}


def test_pass_rate_filter_drops_always_solved_problems():
    always = rows((True, "stop"), (True, "stop"))
    sometimes = rows((True, "stop"), (False, "stop"))
    targets = {0: "a", 1: "b"}
    assert select_problem(always, targets, max_pass_rate=0.99).accepted == []
    assert len(select_problem(sometimes, targets, max_pass_rate=0.99).accepted) == 1


def test_reward_threshold_uses_the_row_reward():
    r = [{"sample_index": 0, "correct": True, "reward": 0.5, "finish_reason": "stop"}]
    assert select_problem(r, {0: "a"}, reward_threshold=0.5).accepted
    assert not select_problem(r, {0: "a"}, reward_threshold=0.6).accepted


# -- sample log ----------------------------------------------------------------------------------


def sample(pid, i):
    return {"problem_id": pid, "sample_index": i, "response": "r", "finish_reason": "stop", "correct": True}


def test_sample_log_appends_and_resumes(tmp_path):
    path = tmp_path / "samples.jsonl"
    with SampleLog(path) as store:
        store.append([sample("p", 0), sample("p", 1)])
    with SampleLog(path) as store:
        assert set(store.rows) == {("p", 0), ("p", 1)}
        with pytest.raises(RuntimeError, match="already in"):
            store.append([sample("p", 1)])


def test_partial_last_line_is_cut_on_resume(tmp_path):
    path = tmp_path / "samples.jsonl"
    full = json.dumps(sample("p", 0)) + "\n"
    path.write_text(full + json.dumps(sample("p", 1))[:25])
    store = SampleLog(path).open()
    assert set(store.rows) == {("p", 0)} and store.dropped_partial_bytes == 25
    store.append([sample("p", 1)])
    store.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["sample_index"] == 1


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(sample("p", 0)) + "\n{oops\n" + json.dumps(sample("p", 2)) + "\n")
    with pytest.raises(DataError, match=r"samples.jsonl, line 2"):
        SampleLog(path).open()


def test_duplicate_rows_in_an_edited_log_are_an_error(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text((json.dumps(sample("p", 0)) + "\n") * 2)
    with pytest.raises(DataError, match=r"line 2, field 'sample_index'.*appears twice"):
        SampleLog(path).open()


# -- config and seeds ----------------------------------------------------------------------------


def test_sample_seeds_are_stable_and_distinct():
    seeds = {sample_seed(0, "gsm8k/train/1", i) for i in range(8)}
    assert len(seeds) == 8 and sample_seed(0, "gsm8k/train/1", 3) == sample_seed(0, "gsm8k/train/1", 3)


def test_config_checks():
    assert TracesConfig(base_url="http://x/v1").resolved_backend == "openai"
    assert TracesConfig().resolved_backend == "hf"
    with pytest.raises(ValueError, match="needs base_url"):
        TracesConfig(backend="openai")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        TracesConfig(drop_patterns=["(unclosed"])
    with pytest.raises(ValueError, match="min_pass_rate"):
        TracesConfig(min_pass_rate=0.8, max_pass_rate=0.5)
