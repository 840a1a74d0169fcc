"""Chat-template rendering and loss masks.

The supervised span is found by rendering, not by ``{% generation %}`` markers (most templates have none):
the conversation without its last turn is rendered with ``add_generation_prompt=True`` (exactly what the
model sees at inference), the full conversation must start with that text followed by the response and
an end-of-turn token. The prompt and the response are tokenized separately, as at inference the prompt
is tokenized and the response is generated token by token. The end-of-turn token is always supervised:
a model that never learns to emit it never stops.

With ``calculator=True`` the results the calculator tool inserts at generation (``24>>`` in
``<<48/2=24>>``) are tokenized on their own, as the tool inserts them, and are not supervised: the model
learns to write the call and to use its result, not to compute it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from mathsft.data.schema import SFTExample, content_hash
from mathsft.errors import DataError
from mathsft.generation.calculator import result_spans

Mask = Literal["completion", "assistant_with_header", "all"]
CACHE_VERSION = 2


@dataclass
class Tokenized:
    """One example: token ids and which of them are targets (``supervised[t]``: token t is predicted)."""

    input_ids: np.ndarray  # int64 [T]
    supervised: np.ndarray  # bool [T]
    example_id: str

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenizeStats:
    examples: int = 0
    kept: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    dropped_no_target: int = 0  # truncation removed every supervised token
    tokens: int = 0
    supervised_tokens: int = 0
    lengths: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["lengths"]
        return out


@dataclass
class Rendered:
    """The pieces of one rendered conversation (text), before tokenization."""

    context: str  # the conversation before the last turn
    header: str  # the assistant header the generation prompt adds
    response: str
    end_of_turn: str
    tail: str  # whatever the template writes after the end-of-turn token


def chat_template_digest(tokenizer: Any) -> str:
    template = tokenizer.chat_template or ""
    if isinstance(template, dict):
        template = json.dumps(template, sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:16]


def _end_of_turn_candidates(tokenizer: Any) -> list[str]:
    """Special tokens that may close a turn, EOS first, then the longest first (so ``<|im_end|>`` beats ``<``)."""
    special = [t for t in tokenizer.all_special_tokens if t]
    added = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    rest = sorted({*special, *added} - {tokenizer.eos_token}, key=len, reverse=True)
    return ([tokenizer.eos_token] if tokenizer.eos_token else []) + rest


def render(tokenizer: Any, example: SFTExample) -> Rendered:
    """Split the rendered conversation into context / header / response / end-of-turn / tail."""
    messages = example.messages
    if not messages or messages[-1].get("role") != "assistant":
        raise DataError(f"example {example.id!r}: the last message must be the assistant's response")
    response = messages[-1].get("content") or ""
    if not response.strip():
        raise DataError(f"example {example.id!r}: the response is empty (nothing to train on)")

    def text(msgs: list[dict[str, str]], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)

    context = text(messages[:-1], False) if len(messages) > 1 else ""
    prompt = text(messages[:-1], True) if len(messages) > 1 else ""
    full = text(messages, False)
    if not prompt.startswith(context) or not full.startswith(prompt):
        raise DataError(
            f"example {example.id!r}: the chat template does not render the conversation as the generation "
            "prompt followed by the response, so the response cannot be located"
        )
    rest = full[len(prompt) :]
    if not rest.startswith(response):
        raise DataError(
            f"example {example.id!r}: the chat template changes the assistant's text (e.g. strips or rewrites "
            "it), so the supervised tokens would not be the response"
        )
    after = rest[len(response) :]
    eot = next((t for t in _end_of_turn_candidates(tokenizer) if after.startswith(t)), None)
    if eot is None:
        raise DataError(
            f"example {example.id!r}: the chat template writes no special end-of-turn token after the "
            f"response (found {after[:20]!r}); the model would never learn to stop"
        )
    return Rendered(context, prompt[len(context) :], response, eot, after[len(eot) :])


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def response_tokens(tokenizer: Any, response: str, calculator: bool = False) -> tuple[list[int], list[bool]]:
    """The response's token ids, and which are the model's to predict: all of them, or with the calculator
    all but the tool's results, each tokenized apart as the tool inserts it."""
    if not calculator:
        ids = _encode(tokenizer, response)
        return ids, [True] * len(ids)
    ids, own, cut = [], [], 0
    for start, end in [*result_spans(response), (len(response), len(response))]:
        for text, supervised in ((response[cut:start], True), (response[start:end], False)):
            piece = _encode(tokenizer, text)
            ids += piece
            own += [supervised] * len(piece)
        cut = end
    return ids, own


def tokenize_example(
    tokenizer: Any, example: SFTExample, mask: Mask = "completion", calculator: bool = False
) -> Tokenized:
    """Token ids and the loss mask of one example (see the module docstring)."""
    parts = render(tokenizer, example)

    def enc(text: str) -> list[int]:
        return _encode(tokenizer, text)

    prompt_ids = enc(parts.context + parts.header)
    context_ids = enc(parts.context)
    if mask == "assistant_with_header" and prompt_ids[: len(context_ids)] != context_ids:
        raise DataError(
            f"example {example.id!r}: the assistant header does not start on a token boundary; "
            "use mask=completion"
        )
    eot_ids = enc(parts.end_of_turn)
    response_ids, own = response_tokens(tokenizer, parts.response, calculator)
    tail_ids = enc(parts.tail)
    ids = prompt_ids + response_ids + eot_ids + tail_ids
    supervised = np.zeros(len(ids), dtype=bool)
    if mask == "all":
        supervised[1:] = True
    else:
        start = len(context_ids) if mask == "assistant_with_header" else len(prompt_ids)
        supervised[start : len(prompt_ids) + len(response_ids) + len(eot_ids)] = True
    tool = len(prompt_ids) + np.flatnonzero(~np.asarray(own, dtype=bool))
    supervised[tool] = False
    supervised[0] = False  # nothing predicts the first token
    return Tokenized(np.asarray(ids, dtype=np.int64), supervised, example.id)


def tokenize_examples(
    tokenizer: Any,
    examples: list[SFTExample],
    max_length: int,
    mask: Mask = "completion",
    overlong: Literal["drop", "truncate"] = "drop",
    calculator: bool = False,
) -> tuple[list[Tokenized], TokenizeStats]:
    """Tokenize every example, dropping or truncating those longer than ``max_length`` (counted, never silent)."""
    stats = TokenizeStats(examples=len(examples))
    out: list[Tokenized] = []
    for example in examples:
        item = tokenize_example(tokenizer, example, mask, calculator)
        if len(item) > max_length:
            if overlong == "drop":
                stats.dropped_overlong += 1
                continue
            item = Tokenized(item.input_ids[:max_length], item.supervised[:max_length], item.example_id)
            stats.truncated += 1
            if not item.supervised.any():
                stats.dropped_no_target += 1
                continue
        out.append(item)
        stats.tokens += len(item)
        stats.supervised_tokens += int(item.supervised.sum())
        stats.lengths.append(len(item))
    stats.kept = len(out)
    return out, stats


def cache_key(
    tokenizer: Any, examples: list[SFTExample], max_length: int, mask: str, overlong: str, calculator: bool
) -> str:
    """(data hash, tokenizer, chat template, max length, mask, overlong, calculator) -> a file name."""
    parts = [
        CACHE_VERSION,
        content_hash(examples),
        str(tokenizer.name_or_path),
        len(tokenizer),
        chat_template_digest(tokenizer),
        max_length,
        mask,
        overlong,
        calculator,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def save_tokenized(path: Any, items: list[Tokenized], stats: TokenizeStats) -> None:
    """One ``.npz`` with the concatenated ids and masks; written to a temporary name, then renamed."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.asarray([len(t) for t in items], dtype=np.int64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        input_ids=np.concatenate([t.input_ids for t in items]) if items else np.zeros(0, np.int64),
        supervised=np.concatenate([t.supervised for t in items]) if items else np.zeros(0, bool),
        lengths=lengths,
        example_ids=np.asarray([t.example_id for t in items], dtype=str),
        stats=np.asarray(json.dumps(asdict(stats))),
    )
    tmp.rename(path)


def load_tokenized(path: Any) -> tuple[list[Tokenized], TokenizeStats]:
    with np.load(path) as data:
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
        ids, sup, names = data["input_ids"], data["supervised"], data["example_ids"]
        items = [
            Tokenized(ids[a:b].copy(), sup[a:b].copy(), str(name))
            for a, b, name in zip(bounds[:-1], bounds[1:], names, strict=True)
        ]
        stats = TokenizeStats(**json.loads(str(data["stats"])))
    return items, stats


def tokenize_cached(
    tokenizer: Any,
    examples: list[SFTExample],
    max_length: int,
    mask: Mask = "completion",
    overlong: Literal["drop", "truncate"] = "drop",
    calculator: bool = False,
) -> tuple[list[Tokenized], TokenizeStats, str]:
    """``tokenize_examples`` through the on-disk cache under ``$MATHSFT_CACHE/tokenized``; returns the key too."""
    from mathsft.models import cache_dir

    key = cache_key(tokenizer, examples, max_length, mask, overlong, calculator)
    path = cache_dir() / "tokenized" / f"{key}.npz"
    if path.is_file():
        items, stats = load_tokenized(path)
        return items, stats, key
    items, stats = tokenize_examples(tokenizer, examples, max_length, mask, overlong, calculator)
    save_tokenized(path, items, stats)
    return items, stats, key
