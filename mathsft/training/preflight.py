"""The pre-flight report, written before step 1: what the model will actually be trained on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mathsft.generation.calculator import result_spans
from mathsft.training.tokenize import Tokenized, TokenizeStats

OPEN, CLOSE = "⟦", "⟧"  # marks the supervised span in the rendered example


def highlight(tokenizer: Any, item: Tokenized) -> str:
    """The example's text with each run of supervised tokens wrapped in ⟦ ⟧."""
    out, run, state = [], [], False
    for token, sup in zip(item.input_ids.tolist(), item.supervised.tolist(), strict=True):
        if sup != state and run:
            text = tokenizer.decode(run)
            out.append(f"{OPEN}{text}{CLOSE}" if state else text)
            run = []
        state = sup
        run.append(token)
    if run:
        text = tokenizer.decode(run)
        out.append(f"{OPEN}{text}{CLOSE}" if state else text)
    return "".join(out)


def histogram(lengths: list[int], max_length: int, bins: int = 8) -> list[dict[str, int]]:
    edges = np.linspace(0, max_length, bins + 1).astype(int)
    counts, _ = np.histogram(lengths, bins=edges)
    return [
        {"from": int(a), "to": int(b), "count": int(c)}
        for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def write_preflight(
    out: Path,
    tokenizer: Any,
    items: list[Tokenized],
    stats: TokenizeStats,
    response: str,
    end_of_turn: str,
    padding_fraction: float,
    hashes: dict[str, str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """``preflight.json`` + ``preflight.md``; returns the JSON."""
    first = items[0]
    supervised_text = tokenizer.decode(first.input_ids[first.supervised].tolist())
    if extra.get("calculator"):  # the tool's results are left out of the loss: the expected text has none
        cuts = result_spans(response)
        bounds = [0, *(i for span in cuts for i in span), len(response)]
        response = "".join(response[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=True))
    report = {
        "examples": stats.to_dict(),
        "supervised_fraction": stats.supervised_tokens / max(stats.tokens, 1),
        "mean_length": stats.tokens / max(stats.kept, 1),
        "max_length_seen": max(stats.lengths) if stats.lengths else 0,
        "length_histogram": histogram(stats.lengths, max(extra["max_length"], 1)),
        "padding_fraction": padding_fraction,
        "example_id": first.example_id,
        "supervised_is_response_plus_eot": supervised_text == response + end_of_turn,
        **hashes,
        **extra,
    }
    (out / "preflight.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    s = report["examples"]
    width = max((b["count"] for b in report["length_histogram"]), default=1) or 1
    bars = "\n".join(
        f"  {b['from']:>6}-{b['to']:<6} {'#' * round(30 * b['count'] / width):<30} {b['count']}"
        for b in report["length_histogram"]
    )
    warnings = "".join(f"- **warning:** {w}\n" for w in extra.get("warnings", []))
    calculator = ", the calculator's results left out" if extra.get("calculator") else ""
    md = f"""# Pre-flight

- examples: {s["examples"]} read, {s["kept"]} kept; over max_length {extra["max_length"]}: \
{s["dropped_overlong"]} dropped, {s["truncated"]} truncated ({s["dropped_no_target"]} of them dropped as \
nothing supervised was left)
- tokens: {s["tokens"]}, supervised {s["supervised_tokens"]} ({report["supervised_fraction"]:.1%}); \
mean length {report["mean_length"]:.1f}, longest {report["max_length_seen"]}
- loss mask: {extra["mask"]}; packing: {extra["packing"]}; padding fraction: {padding_fraction:.1%}
- supervised tokens of the example decode to exactly response + end-of-turn ({end_of_turn!r}){calculator}: \
{report["supervised_is_response_plus_eot"]}
- chat template hash: {hashes["chat_template_hash"]}; prompt template {extra["prompt"]!r} hash: \
{hashes["prompt_template_hash"]}
{warnings}
## Length histogram (tokens)

```
{bars}
```

## Example {first.example_id} (supervised span in {OPEN} {CLOSE})

```
{highlight(tokenizer, first)}
```
"""
    (out / "preflight.md").write_text(md, encoding="utf-8")
    return report
