"""The hf backend: same greedy text as plain ``generate`` whatever the batching, seeded sampling, stops, counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import save_tiny_model
from torch import nn

from mathsft.errors import MathsftError
from mathsft.generation import make_backend
from mathsft.generation.base import Request, SamplingParams
from mathsft.generation.hf import HFBackend, draw, sample_next

PROMPTS = [
    "What is 2 + 3?",
    "A train leaves at noon and travels 60 miles per hour for three hours. How far does it go?",
    "Compute 7 * 8.",
    "Let x be the number of apples. If x + 4 = 10, what is x? Explain.",
    "Hi",
]
GREEDY = SamplingParams(max_new_tokens=12)
SAMPLED = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.95, top_k=50, seed=7)


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> HFBackend:
    return HFBackend(str(tiny_model_dir), dtype="float32", batch_size=2)


def texts(results: list) -> list[list[str]]:
    return [[c.text for c in completions] for completions in results]


def test_greedy_matches_plain_generate_one_prompt_at_a_time(backend: HFBackend) -> None:
    results = backend.generate([Request(p) for p in PROMPTS], GREEDY)
    tokenizer, model = backend.tokenizer, backend.model
    for prompt, (completion,) in zip(PROMPTS, results, strict=True):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=GREEDY.max_new_tokens, do_sample=False)
        expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert completion.text == expected


def test_greedy_independent_of_batching_and_weight_packing(backend: HFBackend, tiny_model_dir: Path) -> None:
    batched = texts(backend.generate([Request(p) for p in PROMPTS], GREEDY))  # 5 rows through 2 slots
    single = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=1, pack_weights=False)
    assert single.packed_linears == 0
    alone = [texts(single.generate([Request(p)], GREEDY))[0] for p in PROMPTS]
    assert batched == alone


def test_bf16_weights_are_packed_only_where_the_cpu_computes_bf16_natively(tiny_model_dir: Path) -> None:
    packed = HFBackend(str(tiny_model_dir), dtype="bfloat16", batch_size=2)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # AMX / AVX512-BF16; emulated bf16 stays plain
    assert (packed.packed_linears > 0) == native
    plain = HFBackend(str(tiny_model_dir), dtype="bfloat16", batch_size=2, pack_weights=False)
    ids = packed.tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        a, b = packed.model(ids).logits.float(), plain.model(ids).logits.float()
    assert a.dtype == b.dtype and torch.allclose(a, b, atol=0.05 * b.abs().max().item())
    (completion,) = packed.generate([Request(PROMPTS[1])], GREEDY)[0]
    assert completion.completion_tokens == GREEDY.max_new_tokens or completion.finish_reason == "stop"


def test_n_samples_seeded_and_independent_of_batch(backend: HFBackend, tiny_model_dir: Path) -> None:
    request = Request(PROMPTS[1], n=3)
    first = texts(backend.generate([request], SAMPLED))[0]
    assert len(first) == 3 and len(set(first)) == 3  # distinct streams per sample
    assert texts(backend.generate([request], SAMPLED))[0] == first  # same seed, same samples
    wide = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=8)
    mixed = wide.generate([Request(PROMPTS[0], n=2), request, Request(PROMPTS[3])], SAMPLED)
    assert [c.text for c in mixed[1]] == first  # other sequences in the batch change nothing
    reseeded = texts(backend.generate([Request(PROMPTS[1], n=3, seed=8)], SAMPLED))[0]
    assert reseeded != first


def test_samples_of_a_request_share_one_prefill(tiny_model_dir: Path, monkeypatch: Any) -> None:
    """A request's n samples are prefilled once and the cache copied (RL groups, pass@k): the text is
    what prefilling every sample on its own gives."""
    requests = [Request(PROMPTS[1], n=4), Request(PROMPTS[3], n=3)]
    alone = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=1)  # one slot: no sharing
    expected = texts(alone.generate(requests, SAMPLED))
    shared = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=8)
    prefilled: list[int] = []
    original = shared._prefill
    monkeypatch.setattr(
        shared, "_prefill", lambda group, *a: prefilled.append(len(group)) or original(group, *a)
    )
    assert texts(shared.generate(requests, SAMPLED)) == expected
    assert prefilled == [2]  # the two prompts, once each, for seven sequences


def test_draw_samples_each_row_from_its_probabilities_with_its_generator() -> None:
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.0, 2.0, 2.0]])  # rows need not sum to 1
    generators = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    counts = torch.zeros(2, 4)
    for _ in range(20_000):
        counts[torch.arange(2), draw(probs, generators)] += 1
    assert torch.allclose(counts / 20_000, probs / probs.sum(-1, keepdim=True), atol=0.015)
    assert counts[:, 1].sum() == 0 and counts[1, 0] == 0  # a token of zero probability never comes up
    seeded = [draw(probs, [torch.Generator().manual_seed(s) for s in (5, 6)]).tolist() for _ in range(2)]
    assert seeded[0] == seeded[1]  # the same generator states, the same tokens


def test_top_k_and_top_p_keep_only_the_tokens_they_name() -> None:
    logits = torch.log(torch.tensor([[0.05, 0.6, 0.05, 0.25, 0.05]])).repeat(200, 1)
    generators = [torch.Generator().manual_seed(i) for i in range(200)]
    top2 = sample_next(logits, SamplingParams(max_new_tokens=1, temperature=1.0, top_k=2), generators)
    assert set(top2.tolist()) == {1, 3}
    nucleus = sample_next(logits, SamplingParams(max_new_tokens=1, temperature=1.0, top_p=0.5), generators)
    assert set(nucleus.tolist()) == {1}  # the top token alone already holds 0.6 > 0.5
    plain = sample_next(logits, SamplingParams(max_new_tokens=1, temperature=1.0), generators)
    assert set(plain.tolist()) == {0, 1, 2, 3, 4}


def test_greedy_tokens_in_bf16_are_the_first_of_equal_maxima() -> None:
    logits = torch.randn(64, 4096).to(torch.bfloat16)  # bf16's 8-bit mantissa makes ties common
    logits[0, 7] = logits[0, 9] = logits[0].max() + 1  # a tie for the maximum: the first index wins
    picked = sample_next(logits, GREEDY, [None] * 64)
    assert picked[0] == 7 and torch.equal(picked, logits.argmax(dim=-1))


def test_stop_string_truncates_and_reports_stop(backend: HFBackend) -> None:
    (full,) = backend.generate([Request(PROMPTS[0])], GREEDY)[0]
    assert full.finish_reason == "length"  # a random model does not emit EOS within 12 tokens
    stop = full.text[len(full.text) // 2 :][:3]
    assert stop.strip(), full.text
    params = SamplingParams(max_new_tokens=GREEDY.max_new_tokens, stop=("@@never@@", stop))
    (cut,) = backend.generate([Request(PROMPTS[0])], params)[0]
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens


def test_length_finish_and_token_counts(backend: HFBackend) -> None:
    results = backend.generate([Request(p) for p in PROMPTS], SamplingParams(max_new_tokens=5))
    for prompt, (completion,) in zip(PROMPTS, results, strict=True):
        assert completion.finish_reason == "length"
        assert completion.completion_tokens == 5
        assert completion.prompt_tokens == len(backend.tokenizer(prompt)["input_ids"])


def test_eos_ends_the_completion_without_its_text(tiny_model_dir: Path) -> None:
    backend = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=4)
    (free,) = backend.generate([Request(PROMPTS[2])], GREEDY)[0]
    ids = backend.tokenizer(PROMPTS[2], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        generated = backend.model.generate(ids, max_new_tokens=3, do_sample=False)[0, ids.shape[1] :].tolist()
    backend.eos_ids = {generated[2]}  # pretend the third generated token is the model's EOS
    (ended,) = backend.generate([Request(PROMPTS[2])], GREEDY)[0]
    assert ended.finish_reason == "stop"
    assert ended.completion_tokens == generated.index(generated[2]) + 1  # the EOS counts, as in vLLM
    assert free.text.startswith(ended.text) and len(ended.text) < len(free.text)


def test_on_result_fires_once_per_request_with_its_completions(backend: HFBackend) -> None:
    requests = [Request(p, n=2 if i % 2 else 1, key=f"k{i}") for i, p in enumerate(PROMPTS)]
    seen: list[tuple[int, str, int]] = []
    results = backend.generate(requests, SAMPLED, on_result=lambda i, r, cs: seen.append((i, r.key, len(cs))))
    assert sorted(seen) == [(i, r.key, r.n) for i, r in enumerate(requests)]
    assert [len(r) for r in results] == [r.n for r in requests]


def test_chat_messages_render_with_the_chat_template(backend: HFBackend) -> None:
    messages = [{"role": "user", "content": PROMPTS[0]}]
    rendered = backend.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    chat, raw = backend.generate([Request(messages), Request(rendered)], GREEDY)
    assert chat[0].text == raw[0].text
    assert chat[0].prompt_tokens == raw[0].prompt_tokens


def test_bad_prompts_and_options_are_clear_errors(backend: HFBackend) -> None:
    with pytest.raises(MathsftError, match="empty prompt"):
        backend.generate([Request("")], GREEDY)
    with pytest.raises(MathsftError, match="string or a list of chat messages"):
        backend.generate([Request(42)], GREEDY)  # type: ignore[arg-type]
    with pytest.raises(MathsftError, match="dtype"):
        HFBackend("unused", dtype="fp8")
    with pytest.raises(MathsftError, match="unknown generation backend 'tgi'; known: hf, vllm, openai"):
        make_backend("tgi", "m")
    with pytest.raises(MathsftError, match="hf backend: bad options"):
        make_backend("hf", "m", temperature=0.5)
    with pytest.raises(MathsftError, match="base_url"):
        make_backend("openai", "m")


def test_make_backend_builds_the_named_backend(tiny_model_dir: Path) -> None:
    backend = make_backend("hf", str(tiny_model_dir), batch_size=3)
    assert isinstance(backend, HFBackend) and backend.batch_size == 3
    openai = make_backend("openai", "served-model", base_url="http://localhost:1/v1", concurrency=2)
    assert openai.name == "openai" and openai.model_name == "served-model"


@pytest.mark.slow
def test_real_model_stops_at_im_end_with_sensible_text(smollm2_dir: Path) -> None:
    backend = HFBackend(str(smollm2_dir), batch_size=2)
    assert 2 in backend.eos_ids  # <|im_end|>, not the pad token <|endoftext|>
    requests = [
        Request([{"role": "user", "content": "What is the capital of France? Answer in one sentence."}])
    ]
    (completion,) = backend.generate(requests, SamplingParams(max_new_tokens=48))[0]
    assert completion.finish_reason == "stop"
    assert "Paris" in completion.text
    assert "<|im_end|>" not in completion.text and completion.completion_tokens < 48


def test_eager_attention_gets_an_additive_mask(tiny_model_dir: Path) -> None:
    sdpa = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=3)
    expected = texts(sdpa.generate([Request(p) for p in PROMPTS], GREEDY))
    eager = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=3)
    eager.model.config._attn_implementation = eager.attn_implementation = "eager"
    assert texts(eager.generate([Request(p) for p in PROMPTS], GREEDY)) == expected


def test_propose_drafts_copies_what_followed_the_last_ngram() -> None:
    from mathsft.generation.hf import propose_drafts

    assert propose_drafts([5, 6, 7, 8, 9, 5, 6, 7], k=3) == [8, 9, 5]  # trigram 5 6 7 seen before
    assert propose_drafts([1, 2, 3, 9, 2, 3, 4, 2, 3], k=2) == [4, 2]  # latest earlier occurrence wins
    assert propose_drafts([1, 2, 3, 4, 1, 2], k=5) == [3, 4, 1, 2]  # runs to the end of the sequence
    assert propose_drafts([1, 2, 3, 4], k=3) == []  # no repeated n-gram
    assert propose_drafts([1, 2, 1, 2], k=0) == []


def test_accept_drafts_is_greedy_decoding() -> None:
    from mathsft.generation.hf import accept_drafts

    assert accept_drafts([4, 5, 6], [4, 5, 6, 7]) == [4, 5, 6, 7]  # all drafts right: plus the next argmax
    assert accept_drafts([4, 9, 6], [4, 5, 6, 7]) == [4, 5]  # first wrong draft replaced by the argmax
    assert accept_drafts([9], [3, 3]) == [3]
    assert accept_drafts([], [3]) == [3]


def test_draft_tokens_change_nothing_but_speed(tiny_model_dir: Path) -> None:
    params = SamplingParams(max_new_tokens=48)  # a random model repeats itself: drafts get accepted
    requests = [Request(p) for p in PROMPTS]
    plain = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=3).generate(requests, params)
    drafting = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=3, draft_tokens=4)
    drafted = drafting.generate(requests, params)
    assert texts(drafted) == texts(plain)
    assert [c[0].completion_tokens for c in drafted] == [c[0].completion_tokens for c in plain]
    assert [c[0].finish_reason for c in drafted] == [c[0].finish_reason for c in plain]
    assert drafting.draft_stats["accepted"] > 0
    stop = plain[1][0].text[10:14]  # a stop string inside a multi-token acceptance still cuts exactly
    assert stop.strip(), plain[1][0].text
    with_stop = SamplingParams(max_new_tokens=48, stop=[stop])
    assert texts(drafting.generate(requests[1:2], with_stop)) == texts(
        HFBackend(str(tiny_model_dir), dtype="float32", batch_size=3).generate(requests[1:2], with_stop)
    )


def tiny_dir(tmp_path: Path, smollm2_dir: Path, config_class: type, **fields: Any) -> Path:
    """A 2-layer random model of another architecture with the bundled tokenizer, as ``tiny_model_dir``."""
    return save_tiny_model(tmp_path, smollm2_dir, config_class, head_dim=16, **fields)


def plain_greedy(backend: HFBackend, prompt: str, max_new_tokens: int) -> str:
    ids = backend.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = backend.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return backend.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_attention_window_reads_the_sliding_layers_from_the_config() -> None:
    from transformers import Gemma2Config, LlamaConfig, MistralConfig, Phi3Config, Qwen2Config

    from mathsft.generation.hf import attention_window

    assert attention_window(MistralConfig(sliding_window=16)) == 16  # every layer slides
    assert attention_window(MistralConfig(sliding_window=None)) is None
    assert attention_window(Phi3Config(sliding_window=2047)) == 2047
    assert attention_window(Gemma2Config(sliding_window=8)) == 8  # alternate layers slide
    assert attention_window(LlamaConfig()) is None
    assert attention_window(Qwen2Config(sliding_window=8)) is None  # use_sliding_window is off
    layers = {"num_hidden_layers": 2, "use_sliding_window": True, "sliding_window": 8}
    assert attention_window(Qwen2Config(max_window_layers=2, **layers)) is None  # no layer past 2
    assert attention_window(Qwen2Config(max_window_layers=1, **layers)) == 8


def test_a_sliding_window_shorter_than_a_request_is_refused(tmp_path: Path, smollm2_dir: Path) -> None:
    """The 4D masks built here attend to the whole sequence: past the window the text would be wrong."""
    from transformers import MistralConfig

    backend = HFBackend(
        str(tiny_dir(tmp_path, smollm2_dir, MistralConfig, sliding_window=32)), dtype="float32"
    )
    prompt_len = len(backend.tokenizer(PROMPTS[3])["input_ids"])
    fits = 32 - prompt_len
    assert fits > 2, prompt_len
    (within,) = backend.generate([Request(PROMPTS[3])], SamplingParams(max_new_tokens=fits))[0]
    assert within.text == plain_greedy(backend, PROMPTS[3], fits)  # inside the window: full attention
    with pytest.raises(MathsftError, match=r"request 1 .*sliding_window = 32.*vllm or openai"):
        backend.generate([Request("Hi"), Request(PROMPTS[3])], SamplingParams(max_new_tokens=fits + 1))
    backend.draft_tokens = 2  # greedy drafts take cache positions past the kept tokens
    with pytest.raises(MathsftError, match="draft_tokens 2"):
        backend.generate([Request(PROMPTS[3])], SamplingParams(max_new_tokens=fits - 1))


def test_gemma2_soft_capping_runs_eagerly_and_its_window_is_checked(
    tmp_path: Path, smollm2_dir: Path
) -> None:
    """Gemma-2 loads with eager attention, whose own function soft-caps; only the window needs refusing."""
    from transformers import Gemma2Config

    path = tiny_dir(tmp_path, smollm2_dir, Gemma2Config, sliding_window=32, query_pre_attn_scalar=16)
    backend = HFBackend(str(path), dtype="float32")
    assert backend.attn_implementation == "eager"
    (completion,) = backend.generate([Request(PROMPTS[0])], GREEDY)[0]
    assert completion.text == plain_greedy(backend, PROMPTS[0], GREEDY.max_new_tokens)
    with pytest.raises(MathsftError, match="sliding_window = 32"):
        backend.generate([Request(PROMPTS[1])], SamplingParams(max_new_tokens=20))


def test_grouped_sdpa_refuses_soft_capping_sinks_and_a_short_window() -> None:
    """Plain SDPA has none of these; dropping the kwargs silently would give wrong text."""
    from mathsft.generation.hf import grouped_sdpa_attention

    module = nn.Linear(1, 1)
    query, key = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8)
    out, _ = grouped_sdpa_attention(module, query, key, key, None, sliding_window=3)
    assert out.shape == (1, 3, 4, 8)
    with pytest.raises(MathsftError, match="soft-capped attention scores; use the vllm or openai"):
        grouped_sdpa_attention(module, query, key, key, None, softcap=50.0)
    with pytest.raises(MathsftError, match="attention sinks"):
        grouped_sdpa_attention(module, query, key, key, None, s_aux=torch.zeros(4))
    with pytest.raises(MathsftError, match="sliding window of 2"):
        grouped_sdpa_attention(module, query, key, key, None, sliding_window=2)


def test_a_special_token_stop_string_ends_the_completion_as_eos_does(
    tmp_path: Path, smollm2_dir: Path
) -> None:
    """Decoding skips special tokens, so text matching alone never found such a stop string."""
    from transformers import LlamaConfig

    path = tiny_dir(tmp_path, smollm2_dir, LlamaConfig)  # untied: varied text, not the last token repeated
    backend = HFBackend(
        str(path), dtype="float32", batch_size=2, pack_weights=False
    )  # the head stays an nn.Linear to edit
    tokenizer, model = backend.tokenizer, backend.model
    special = "<file_sep>"
    special_id = tokenizer.convert_tokens_to_ids(special)
    assert special_id not in backend.eos_ids
    prompt_ids = tokenizer(PROMPTS[2])["input_ids"]
    (free,) = backend.generate([Request(PROMPTS[2])], GREEDY)[0]
    generated = free.extra["token_ids"]
    assert special_id not in prompt_ids + generated
    # a token new to the sequence: swapping it with the special one changes nothing before it
    k = next(i for i in range(1, len(generated)) if generated[i] not in prompt_ids + generated[:i])
    with torch.no_grad():
        for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            weight[[generated[k], special_id]] = weight[[special_id, generated[k]]].clone()
    (unstopped,) = backend.generate([Request(PROMPTS[2])], GREEDY)[0]
    assert unstopped.extra["token_ids"][: k + 1] == [*generated[:k], special_id]
    params = SamplingParams(max_new_tokens=GREEDY.max_new_tokens, stop=(special,))
    (stopped,) = backend.generate([Request(PROMPTS[2])], params)[0]
    assert stopped.finish_reason == "stop"
    assert stopped.extra["token_ids"] == [*generated[:k], special_id]
    assert stopped.text == tokenizer.decode(generated[:k], skip_special_tokens=True)
    assert backend.generate([Request(PROMPTS[2])], GREEDY)[0][0].finish_reason == "length"  # per call


def test_prompt_plus_new_tokens_beyond_max_position_embeddings_is_refused(backend: HFBackend) -> None:
    long_prompt = "word " * 2000
    prompt_len = len(backend.tokenizer(long_prompt)["input_ids"])
    limit = backend.model.config.max_position_embeddings
    assert 0 < limit - prompt_len < 100, prompt_len
    with pytest.raises(
        MathsftError, match=rf"request 1 needs {prompt_len} prompt tokens .* {limit + 1} .*\({limit}\)"
    ):
        backend.generate(
            [Request("Hi"), Request(long_prompt)], SamplingParams(max_new_tokens=limit - prompt_len + 1)
        )
    (completion,) = backend.generate(
        [Request(long_prompt)], SamplingParams(max_new_tokens=limit - prompt_len)
    )[0]
    assert completion.prompt_tokens + completion.completion_tokens <= limit


def test_the_backends_model_stays_causal_and_padded_when_called_directly(tiny_model_dir: Path) -> None:
    """The grouped SDPA replaces the model's attention; plain calls (``model.generate``) must still see
    a causal mask and their padding, as under transformers' own ``sdpa``."""
    from mathsft.models import load_model

    backend = HFBackend(str(tiny_model_dir), dtype="float32", pack_weights=False)
    reference = load_model(str(tiny_model_dir))
    assert reference.config._attn_implementation == "sdpa"
    tokenizer = backend.tokenizer
    batch = tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)  # left padding
    assert not batch["attention_mask"].all()
    with torch.inference_mode():
        for inputs in (tokenizer(PROMPTS[3], return_tensors="pt"), batch):
            ours, theirs = backend.model(**inputs).logits, reference(**inputs).logits
            real = inputs["attention_mask"].bool()
            assert torch.allclose(ours[real], theirs[real], atol=1e-4)


def test_load_weights_makes_the_backend_generate_as_the_new_weights_do(tiny_model_dir: Path) -> None:
    """An RL policy's weights sent after a step (packed linears repacked, tied head followed): the text is
    what a backend loaded from those weights writes."""
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    live = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=2)
    before = texts(live.generate([Request(p) for p in PROMPTS], GREEDY))
    live.load_weights(other.state_dict().items())
    after = texts(live.generate([Request(p) for p in PROMPTS], GREEDY))
    fresh = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=2, pack_weights=False)
    fresh.model.load_state_dict(other.state_dict())
    assert after == texts(fresh.generate([Request(p) for p in PROMPTS], GREEDY))
    assert after != before
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    live.load_weights((k, v) for k, v in original.items() if k != "lm_head.weight")
    assert texts(live.generate([Request(p) for p in PROMPTS], GREEDY)) == before  # tied head followed
    with pytest.raises(MathsftError, match="does not have"):
        live.load_weights([("model.layers.9.mlp.up_proj.weight", torch.zeros(1))])


class _Scripted:
    """The backend's model, made to write ``script`` (token ids by absolute position) where it holds one:
    a logit bonus on the scripted token at the position before. Elsewhere the model writes its own text."""

    def __init__(self, model: Any, script: dict[int, int]) -> None:
        self.inner, self.script = model, script

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        keep = kwargs.get("logits_to_keep")
        if isinstance(keep, torch.Tensor):  # prefill: the same kept columns in every row
            positions = keep[None, :].expand(out.logits.shape[0], -1)
        else:
            positions = kwargs["position_ids"][:, -out.logits.shape[1] :]
        for (row, col), position in np.ndenumerate(positions.cpu().numpy()):
            if position + 1 in self.script:
                out.logits[row, col, self.script[position + 1]] += 1e4
        return out


def _with_calculator_reference(model: _Scripted, tokenizer: Any, prompt: str, limit: int) -> list[int]:
    """Greedy decoding without a cache, the tool applied by hand: what the backend must write."""
    from mathsft.generation.calculator import call_result

    ids = tokenizer(prompt)["input_ids"]
    tokens: list[int] = []
    while len(tokens) < limit:
        full = torch.tensor([ids + tokens])
        with torch.inference_mode():
            logits = model(input_ids=full, position_ids=torch.arange(full.shape[1])[None]).logits
        token = int(logits[0, -1].argmax())
        tokens.append(token)
        if token == tokenizer.eos_token_id:
            break
        result = call_result(tokenizer.decode(tokens)) if tokenizer.decode([token]).endswith("=") else None
        if result is not None:
            tokens += tokenizer(result, add_special_tokens=False)["input_ids"][: limit - len(tokens)]
    return tokens


def test_calculator_inserts_results_and_generation_goes_on_from_them(tiny_model_dir: Path) -> None:
    """Rows reach '<<17*3=' at different steps in one batch; each gets '51>>' and then writes what a
    cache-free greedy loop writes after it; the inserted tokens are marked and counted."""
    backend = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=3)
    tokenizer = backend.tokenizer
    call = tokenizer(" so <<17*3=", add_special_tokens=False)["input_ids"]
    script = {30 + i: t for i, t in enumerate(call)}  # the call starts at position 30 in every row
    backend.model = _Scripted(backend.model, script)
    params = SamplingParams(max_new_tokens=40, calculator=True)
    results = backend.generate([Request(p) for p in PROMPTS[:4]], params)
    result_ids = tokenizer("51>>", add_special_tokens=False)["input_ids"]
    for prompt, (completion,) in zip(PROMPTS[:4], results, strict=True):
        expected = _with_calculator_reference(backend.model, tokenizer, prompt, params.max_new_tokens)
        assert completion.extra["token_ids"] == expected
        assert "<<17*3=51>>" in completion.text
        mask = completion.extra["tool_mask"]
        assert [t for t, m in zip(expected, mask, strict=True) if m] == result_ids
        assert completion.extra["tool_calls"] == 1
    off = backend.generate([Request(PROMPTS[0])], SamplingParams(max_new_tokens=40))[0][0]
    assert "<<17*3=51>>" not in off.text and not any(off.extra["tool_mask"])


def test_a_calculator_result_is_fed_a_token_a_step_so_other_rows_steps_stay_narrow(
    tiny_model_dir: Path,
) -> None:
    """A result fed in one step would pad every row of the batch to its length (several times the step's
    work); fed a token a step, every decode step of the batch is one token wide and the text is the same."""
    backend = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=4)
    call = backend.tokenizer(" so <<123*456=", add_special_tokens=False)["input_ids"]
    backend.model = _Scripted(backend.model, {30 + i: t for i, t in enumerate(call)})
    widths: list[int] = []
    scripted = backend.model

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(scripted, name)

        def __call__(self, **kwargs: Any) -> Any:
            if not isinstance(kwargs.get("logits_to_keep"), torch.Tensor):  # decode steps, not prefill
                widths.append(kwargs["input_ids"].shape[1])
            return scripted(**kwargs)

    backend.model = Recording()
    params = SamplingParams(max_new_tokens=40, calculator=True)
    results = backend.generate([Request(p) for p in PROMPTS[:4]], params)
    assert widths and set(widths) == {1}
    for prompt, (completion,) in zip(PROMPTS[:4], results, strict=True):
        assert "<<123*456=56088>>" in completion.text
        assert completion.extra["token_ids"] == _with_calculator_reference(
            scripted, backend.tokenizer, prompt, params.max_new_tokens
        )


def test_calculator_result_cut_at_the_token_limit(tiny_model_dir: Path) -> None:
    backend = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=2)
    prompt_len = len(backend.tokenizer(PROMPTS[0])["input_ids"])
    call = backend.tokenizer("<<1000*1000=", add_special_tokens=False)["input_ids"]
    backend.model = _Scripted(backend.model, {prompt_len + i: t for i, t in enumerate(call)})
    limit = len(call) + 3  # room for 3 of the result's 9 tokens
    (completion,) = backend.generate(
        [Request(PROMPTS[0])], SamplingParams(max_new_tokens=limit, calculator=True)
    )[0]
    assert completion.finish_reason == "length" and completion.completion_tokens == limit
    assert completion.text.endswith("<<1000*1000=100")


def test_other_backends_refuse_the_calculator() -> None:
    from mathsft.generation.base import refuse_calculator

    with pytest.raises(MathsftError, match="hf backend only"):
        refuse_calculator("openai", SamplingParams(calculator=True))
    refuse_calculator("openai", SamplingParams())


def test_auto_dtype_is_bf16_only_where_the_device_computes_it_natively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mathsft.generation import hf

    monkeypatch.setattr(hf, "native_bf16", lambda device: device == "cpu")
    assert hf.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(hf, "native_bf16", lambda device: False)
    assert hf.resolve_dtype("auto", "cpu") == "float32"
    assert hf.resolve_dtype("float32", "cpu") == "float32"  # an explicit dtype is kept


def test_refill_order_keeps_slots_sorted_from_chunk_to_chunk(monkeypatch: Any) -> None:
    from mathsft.generation import hf

    monkeypatch.setattr(hf, "CHUNK_ROWS", 2)
    positions = [10, 9, 8, 7, 6, 5, 4]  # slots 0..6, longest first; slot 1's row ends
    moves = hf.refill_order(positions, 1)
    assert moves == [(2, 1), (4, 2), (6, 4)]  # one move per later chunk, the last row fills the last hole
    slots = list(positions)
    for src, dst in moves:
        slots[dst] = slots[src]
    slots.pop()
    chunks = [slots[i : i + 2] for i in range(0, len(slots), 2)]
    assert chunks == [[10, 8], [6, 7], [4, 5]]  # every chunk holds rows no longer than the one before
    assert hf.refill_order(positions, 6) == []  # the last row ended: nothing to move
    assert hf.refill_order(positions, 5) == [(6, 5)]


def test_attention_in_row_chunks_reads_less_cache_and_changes_no_token(
    tiny_model_dir: Path, monkeypatch: Any
) -> None:
    """Rows of a decode step attend in chunks, each over the cache positions its own rows reach: fewer
    positions read than the step's longest row, and every token as one row decoded alone gives."""
    from mathsft.generation import hf

    monkeypatch.setattr(hf, "CHUNK_ROWS", 2)
    reads: list[tuple[int, int]] = []  # (positions a chunk read, the step's widest)
    attention = hf.grouped_sdpa_attention

    def recording(
        module: nn.Module, query: torch.Tensor, key: torch.Tensor, *args: Any, **kwargs: Any
    ) -> Any:
        reads.extend((c.width, key.shape[2]) for c in kwargs.get(hf.ROW_CHUNKS) or [])
        return attention(module, query, key, *args, **kwargs)

    monkeypatch.setattr(hf, "grouped_sdpa_attention", recording)
    backend = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=5)
    prompts = [p + " Answer:" * k for k, p in enumerate(PROMPTS)]  # distinct lengths
    batched = texts(backend.generate([Request(p) for p in prompts], SamplingParams(max_new_tokens=20)))
    assert reads and any(width < widest for width, widest in reads)
    single = HFBackend(str(tiny_model_dir), dtype="float32", batch_size=1)
    alone = [texts(single.generate([Request(p)], SamplingParams(max_new_tokens=20)))[0] for p in prompts]
    assert batched == alone
    sampled = SamplingParams(max_new_tokens=20, temperature=1.0, seed=3)
    request = [Request(p, n=3) for p in prompts]
    assert texts(backend.generate(request, sampled)) == texts(
        HFBackend(str(tiny_model_dir), dtype="float32", batch_size=15).generate(request, sampled)
    )
