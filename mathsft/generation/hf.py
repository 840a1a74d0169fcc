"""``hf`` backend: in-process transformers model with a continuous-batching decode loop.

``model.generate`` keeps every row of a batch until the longest one ends and re-concatenates its
KV cache each step. This loop instead keeps up to ``batch_size`` sequences in fixed cache slots,
each writing its keys/values at its own position (so no padding is ever attended to), evicts a
sequence the step it finishes and refills the slot with the next waiting prompt; attention runs in
chunks of rows kept roughly sorted by length, each reading the cache only as far as it reaches. Prompts are
prefilled in groups sorted by length, each distinct prompt once: the n samples of a request (an RL
group, pass@k) copy its keys/values. The model itself is the unmodified Hugging Face module: the
loop only hands it per-row ``position_ids``, a ready 4D mask and a slot cache, so any decoder-only
architecture whose attention calls the cache's ``update`` works, as long as that attention is plain
causal attention over the whole sequence: transformers uses a 4D mask as given, so a sliding window
shorter than a request would be ignored, and the grouped SDPA below has no soft-capping or attention
sinks. Those are refused with an error naming what the model asks for, never silently dropped.

On CPU every ``nn.Linear`` is swapped for a oneDNN pre-packed weight (what ``torch.compile`` freezing
does on CPU) in float32, and in bfloat16 where the CPU computes it natively (AVX512-BF16 / AMX): that
made small-batch decode matmuls ~1.5x faster and the full-vocabulary head ~2x faster on a 2-core AVX2
machine, and a batch-16 bf16 matmul 1.6x faster on a 2-core AMX Xeon (BENCHMARKS.md).

With ``draft_tokens=k`` and greedy decoding, each decode step also feeds up to ``k`` draft tokens per
row, copied from what followed the latest earlier occurrence of the row's last n-gram (prompt-lookup
decoding; vLLM's ``ngram`` speculative method), and keeps the drafts that equal the model's argmax
plus the argmax after them; the text is what one-token greedy decoding gives. It pays where a step is
bound by reading the weights (a GPU, small batches); on the 2-core CPU this was written on a batch-16
step is already half compute-bound, so verifying a draft costs ~1.5x a step and the gain was within
run-to-run noise (BENCHMARKS.md). Off by default.

Reproducibility: completion ``j`` of a request samples from its own generator seeded with
``(seed, j)`` (``Request.seed``, else ``SamplingParams.seed``), so a completion's random stream does
not depend on which other sequences share the batch. Outputs are then identical across batch
compositions up to floating-point differences of the batched matmuls, which can flip a near-tie.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import sdpa_mask

from mathsft.errors import MathsftError
from mathsft.generation.base import Completion, Request, ResultCallback, SamplingParams
from mathsft.generation.calculator import MAX_EXPRESSION_CHARS, call_result
from mathsft.models import auto_device, beyond_plain_attention, load_model, load_tokenizer, native_bf16

log = logging.getLogger("mathsft.generation.hf")

DTYPES = ("auto", "float32", "bfloat16", "float16")
TOOL_TOKENS = 48  # the most tokens one calculator result can insert (30 digits, sign, point, ">>")
TOOL_LOOKBACK = MAX_EXPRESSION_CHARS + 8  # tokens decoded to find an open call (a digit is one token)


def resolve_device(device: str) -> str:
    device = auto_device(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MathsftError(f"hf backend: device {device!r} requested but CUDA is not available")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: bfloat16 where the device computes it natively (a GPU; a CPU with AVX512-BF16 or AMX:
    ~1.8x faster decoding there), else float32. bf16 text differs from fp32: compare runs at one dtype
    (``summary.json`` records it)."""
    if dtype not in DTYPES:
        raise MathsftError(f"hf backend: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return dtype


class _PackedLinear(nn.Module):
    """``nn.Linear`` with its weight pre-packed for oneDNN (CPU, float32 or native bfloat16)."""

    def __init__(self, linear: nn.Linear, batch_hint: int) -> None:
        super().__init__()
        self.out_features = linear.out_features
        self.batch_hint = batch_hint
        self.dtype = linear.weight.dtype
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), batch_hint)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def repack(self, weight: torch.Tensor) -> None:
        """Pack new weights in place of the old ones (same shape), e.g. after an optimizer step."""
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(self.dtype), self.batch_hint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], self.out_features)


GROUPED_SDPA = "mathsft_grouped_sdpa"
ROW_CHUNKS = "mathsft_row_chunks"  # the forward keyword that hands the attention its row chunks
CHUNK_ROWS = 16  # decode rows per attention call: each call reads the cache only as far as its rows reach


@dataclass(frozen=True)
class RowChunk:
    """Rows ``start..stop`` of a decode step attend over the first ``width`` cache positions under ``mask``
    (the additive mask's rows and columns for them). The engine keeps rows sorted roughly longest first,
    so a chunk of short rows reads a short stretch of the cache instead of the batch's longest."""

    start: int
    stop: int
    width: int
    mask: torch.Tensor | None


def grouped_sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA for grouped-query attention that never copies the shared key/value heads.

    The query heads that share a key/value head are stacked along the query axis (``[B, H, q, D]`` ->
    ``[B, H_kv, groups * q, D]``, the mask tiled to match). transformers' ``sdpa`` does this only for a
    single query token and otherwise repeats the keys and values per query head, which made a decode
    step that verifies draft tokens ~5x slower in attention on CPU.

    Without a mask (the model called directly, not by the backend, which always passes one) it is
    causal as transformers' ``sdpa`` is: the stacked queries need that spelled out as a mask. A decode
    step of the backend also passes its rows in chunks (``ROW_CHUNKS``), one SDPA call each over only
    the cache positions that chunk's rows reach: the same numbers, less of the cache read.
    """
    _refuse_what_sdpa_ignores(module, key.shape[2], kwargs)
    batch, heads, q_len, dim = query.shape
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    if attention_mask is None and q_len > 1 and causal:
        allowed = torch.ones(q_len, key.shape[2], dtype=torch.bool, device=query.device)
        attention_mask = allowed.tril()[None, None]  # top-left aligned, as SDPA's ``is_causal``
    groups = heads // key.shape[1]
    if groups > 1:
        query = query.reshape(batch, key.shape[1], groups * q_len, dim)
    chunks = kwargs.get(ROW_CHUNKS) or [RowChunk(0, batch, key.shape[2], attention_mask)]
    outs = []
    for chunk in chunks:
        rows, width, mask = slice(chunk.start, chunk.stop), chunk.width, chunk.mask
        if mask is not None and groups > 1 and q_len > 1:  # one query token: the mask broadcasts as is
            mask = mask.repeat(1, 1, groups, 1)
        outs.append(
            F.scaled_dot_product_attention(
                query[rows], key[rows, :, :width], value[rows, :, :width], attn_mask=mask, scale=scaling
            )
        )
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.reshape(batch, heads, q_len, dim).transpose(1, 2).contiguous(), None


def _refuse_what_sdpa_ignores(module: nn.Module, width: int, kwargs: dict[str, Any]) -> None:
    """Plain SDPA over ``width`` cached positions: a layer asking for more gets an error, not wrong text.
    Soft-capping and sinks show only here; the window is also checked per request from the config
    (``attention_window``), which covers eager attention and names the limit before any compute."""
    asked = beyond_plain_attention(kwargs, width)
    if asked:
        raise MathsftError(
            f"hf backend: its attention is plain causal SDPA, but {type(module).__name__} asks for "
            f"{' and '.join(asked)}; use the vllm or openai backend for this model"
        )


def attention_window(config: Any) -> int | None:
    """The window of the model's sliding-window layers, or None when every layer sees the whole sequence.

    Mistral and Phi-3 slide every layer when ``sliding_window`` is set; Gemma-2/3 and Qwen2 name the
    sliding layers in ``layer_types`` (Qwen2 also clears the window when ``use_sliding_window`` is off).
    """
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text_config, "sliding_window", None)
    if not window or getattr(text_config, "use_sliding_window", True) is False:
        return None
    layer_types = getattr(text_config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return int(window)


def pack_linears(model: nn.Module, batch_hint: int) -> int:
    """Swap the model's ``nn.Linear`` modules for pre-packed ones; returns how many (0 if unsupported)."""
    dtype = next(model.parameters()).dtype
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 0  # bf16 emulated in software: packing would not make it fast
    if dtype not in (torch.float32, torch.bfloat16):
        return 0
    probe = nn.Linear(8, 4, dtype=dtype)
    try:
        x = torch.randn(3, 8, dtype=dtype)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        if not torch.allclose(_PackedLinear(probe, batch_hint)(x), probe(x), atol=tol, rtol=tol):
            return 0
    except (RuntimeError, AttributeError) as err:  # torch built without oneDNN, or the op changed
        log.info("oneDNN weight packing unavailable (%s); using plain linears", err)
        return 0
    targets = [(name, module) for name, module in model.named_modules() if type(module) is nn.Linear]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, _PackedLinear(module, batch_hint))
    return len(targets)


class SlotCache:
    """Per-layer KV tensors ``[slots, kv_heads, max_len, head_dim]``; active sequences use slots ``0..B-1``.

    Before each forward the engine sets ``start`` (first slot of the batch) and either ``write_pos``
    (``[rows, q_len]`` positions, decode: the next token and any draft tokens) or ``None`` (prefill:
    write positions ``0..q_len-1``), and ``width`` (how many positions attention reads).
    """

    def __init__(self, config: Any, slots: int, max_len: int, dtype: torch.dtype, device: str) -> None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = text_config.num_attention_heads
        kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
        head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
        shape = (slots, kv_heads, max_len, head_dim)
        self.keys = [
            torch.zeros(shape, dtype=dtype, device=device) for _ in range(text_config.num_hidden_layers)
        ]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.start = 0
        self.write_pos: torch.Tensor | None = None
        self.width = 0

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # extra arguments (``cache_kwargs`` up to transformers 5.23, ``kwargs=`` after) carry nothing we use
        k_all, v_all = self.keys[layer_idx], self.values[layer_idx]
        rows = slice(self.start, self.start + key.shape[0])
        if self.write_pos is None:
            k_all[rows, :, : key.shape[2]] = key
            v_all[rows, :, : key.shape[2]] = value
        else:
            # three adjacent index tensors ([B, 1, 1], [1, H, 1], [B, 1, Q]) keep index_put_ on its fast path
            slot = torch.arange(self.start, rows.stop, device=key.device)[:, None, None]
            head = torch.arange(key.shape[1], device=key.device)[None, :, None]
            pos = self.write_pos[:, None, :]
            k_all.index_put_((slot, head, pos), key)
            v_all.index_put_((slot, head, pos), value)
        return k_all[rows, :, : self.width], v_all[rows, :, : self.width]

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` positions of slot ``src`` into slot ``dst`` (compaction after an eviction)."""
        for k_all, v_all in zip(self.keys, self.values, strict=True):
            k_all[dst, :, :length] = k_all[src, :, :length]
            v_all[dst, :, :length] = v_all[src, :, :length]

    def copy_prefix(self, src: list[int], dst: list[int], length: int) -> None:
        """Copy the first ``length`` positions of slots ``src`` into slots ``dst`` (a shared prompt)."""
        source = torch.tensor(src, device=self.keys[0].device)
        target = torch.tensor(dst, device=self.keys[0].device)
        for k_all, v_all in zip(self.keys, self.values, strict=True):
            k_all[target, :, :length] = k_all[source, :, :length]
            v_all[target, :, :length] = v_all[source, :, :length]


@dataclass
class _Row:
    """One completion being generated."""

    request: int
    sample: int
    prompt_ids: list[int]
    generator: torch.Generator | None
    eos_ids: set[int]  # the model's EOS ids and any stop string that is one special token
    started: float = 0.0
    tokens: list[int] = field(default_factory=list)
    tool: list[bool] = field(default_factory=list)  # per token: inserted by the calculator, not sampled
    position: int = 0  # tokens of this row in the cache (its next write position)
    feed: list[int] = field(default_factory=list)  # tokens not yet in the cache, fed at the next step


def greedy_tokens(logits: torch.Tensor) -> torch.Tensor:
    """The argmax over the vocabulary, taken in fp32: the same indices (bf16 -> fp32 is exact and both give the
    first of equal maxima), but CPU argmax has no fast bf16 kernel: 10.8 ms against 2.7 ms for 128 rows on Zen 5."""
    return logits.float().argmax(dim=-1)


def sample_next(
    logits: torch.Tensor, params: SamplingParams, generators: Sequence[torch.Generator | None]
) -> torch.Tensor:
    """Next token per row: argmax when greedy, else temperature / top-k / top-p sampling. The vocabulary is
    sorted only when top-p needs it: sorting it every step made sampled decoding ~1.7x slower (BENCHMARKS.md)."""
    if params.greedy:
        return greedy_tokens(logits)
    logits = logits.float() / params.temperature
    vocab_index = None
    if params.top_k > 0:  # topk returns them sorted, as top-p below needs
        logits, vocab_index = logits.topk(min(params.top_k, logits.shape[-1]), dim=-1)
    elif params.top_p < 1.0:
        logits, vocab_index = logits.sort(dim=-1, descending=True)
    probs = logits.softmax(dim=-1)
    if params.top_p < 1.0:
        # drop tokens whose preceding mass already exceeds top_p (the top token always stays)
        drop = probs.cumsum(dim=-1) - probs > params.top_p
        probs = probs.masked_fill(drop, 0.0)
    picks = draw(probs, generators)
    return picks if vocab_index is None else vocab_index.gather(-1, picks[:, None])[:, 0]


def draw(probs: torch.Tensor, generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """One index per row, drawn from the row's (unnormalized) probabilities with the row's generator, by
    inverting the cumulative sum with one uniform number: exact, and on CPU far cheaper than a
    ``torch.multinomial`` call per row over the whole vocabulary."""
    uniform = torch.cat(
        [torch.rand(1, generator=g, dtype=torch.float64, device=probs.device) for g in generators]
    )
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)
    # the first index whose cumulative mass exceeds u * total: a token of zero probability never is one
    picks = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)[:, 0]
    return picks.clamp_(max=probs.shape[-1] - 1)


def completion_generator(seed: int, sample: int, device: str) -> torch.Generator:
    """The random stream of completion ``sample`` of a request seeded with ``seed``."""
    mixed = int(np.random.SeedSequence([seed & 0xFFFFFFFF, sample]).generate_state(1)[0])
    generator = torch.Generator(device=device)
    generator.manual_seed(mixed)
    return generator


class HFBackend:
    """Generation with a local transformers model (alias, HF directory, ``.gguf`` or hub id)."""

    name = "hf"

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        prefill_batch_tokens: int = 4096,
        pack_weights: bool = True,
        skip_special_tokens: bool = True,
        draft_tokens: int = 0,
    ) -> None:
        if batch_size < 1 or prefill_batch_tokens < 1:
            raise MathsftError("hf backend: batch_size and prefill_batch_tokens must be >= 1")
        if draft_tokens < 0:
            raise MathsftError(f"hf backend: draft_tokens must be >= 0, got {draft_tokens}")
        self.draft_tokens = draft_tokens
        self.draft_stats = {"proposed": 0, "accepted": 0}
        self.model_name = str(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.prefill_batch_tokens = prefill_batch_tokens
        self.skip_special_tokens = skip_special_tokens
        self.tokenizer = load_tokenizer(model, padding_side="left")
        self.model = load_model(model, dtype=self.dtype, device=self.device)
        self.tied_embeddings = bool(
            getattr(self.model.config.get_text_config(), "tie_word_embeddings", False)
        )
        self.packed_linears = 0
        if pack_weights and self.device == "cpu":
            self.packed_linears = pack_linears(self.model, batch_size)
        # transformers 5.24 renamed the forward's ``past_key_values`` to ``cache`` (the old name warns)
        forward_params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in forward_params else "past_key_values"
        self.attn_implementation = self.model.config._attn_implementation
        self.grouped_sdpa = self.attn_implementation == "sdpa"
        if self.grouped_sdpa:
            AttentionInterface.register(GROUPED_SDPA, grouped_sdpa_attention)
            # without a mask function of its own, transformers would hand a custom attention no mask at all
            AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)
            self.model.set_attn_implementation(GROUPED_SDPA)
        elif self.attn_implementation != "eager":
            raise MathsftError(
                f"hf backend: attention implementation {self.attn_implementation!r} does not take the "
                "per-row 4D masks this backend builds; load the model with 'sdpa' or 'eager'"
            )
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if not self.eos_ids:
            raise MathsftError(f"hf backend: {model} defines no EOS token (generation_config or tokenizer)")
        # decoding drops special tokens, so a stop string that is one of them never shows in the text
        self.special_ids = {t.content: i for i, t in self.tokenizer.added_tokens_decoder.items() if t.special}
        text_config = self.model.config.get_text_config()
        self.max_positions: int | None = getattr(text_config, "max_position_embeddings", None)
        # the masks built here attend to the whole sequence: a window must cover every request
        self.sliding_window = attention_window(self.model.config)

    def __repr__(self) -> str:
        return f"HFBackend(model={self.model_name!r}, dtype={self.dtype!r}, device={self.device!r})"

    def load_weights(self, state_dict_items: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the model's weights with HF-named tensors, e.g. a policy's after each RL step (the same
        call as ``VLLMBackend.load_weights``): parameters are copied in (cast to the backend's dtype) and
        pre-packed linears are packed again. A name the model does not have is an error, not a skip."""
        if self.model is None:
            raise MathsftError("hf backend: load_weights() after close()")
        modules = dict(self.model.named_modules())
        params = dict(self.model.named_parameters(remove_duplicate=False))
        seen: set[str] = set()
        with torch.no_grad():
            for name, tensor in state_dict_items:
                owner, _, leaf = name.rpartition(".")
                module = modules.get(owner)
                if isinstance(module, _PackedLinear) and leaf == "weight":
                    module.repack(tensor.to(self.device))
                elif isinstance(module, _PackedLinear) and leaf == "bias" and module.bias is not None:
                    module.bias = tensor.detach().to(self.device, module.bias.dtype)
                elif name in params:
                    params[name].copy_(tensor)
                else:
                    raise MathsftError(
                        f"hf backend: load_weights got {name!r}, which the model does not have"
                    )
                seen.add(name)
        # a tied head packed on its own follows the embedding when only the embedding was sent
        head = self.model.get_output_embeddings()
        if isinstance(head, _PackedLinear) and "lm_head.weight" not in seen and self.tied_embeddings:
            head.repack(self.model.get_input_embeddings().weight)

    def close(self) -> None:
        """Drop the model so its memory can be reclaimed."""
        self.model = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # -- prompts ------------------------------------------------------------------------------------

    def encode(self, prompt: Any) -> list[int]:
        """Token ids of a raw prompt, or of chat messages rendered with the chat template."""
        if isinstance(prompt, str):  # the tokenizer's own convention (BOS or not), as vLLM does
            ids = self.tokenizer(prompt)["input_ids"]
        elif isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
            if not self.tokenizer.chat_template:
                raise MathsftError(
                    f"hf backend: {self.model_name} has no chat template; send raw text prompts"
                )
            text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]  # the template has BOS
        else:
            raise MathsftError(
                f"hf backend: a prompt must be a string or a list of chat messages, got {type(prompt).__name__}"
            )
        if not ids:
            raise MathsftError("hf backend: empty prompt")
        return list(ids)

    # -- generation ---------------------------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[Request],
        params: SamplingParams,
        on_result: ResultCallback | None = None,
    ) -> list[list[Completion]]:
        """Complete every request; ``on_result`` fires as soon as all of a request's samples are done."""
        if self.model is None:
            raise MathsftError("hf backend: generate() after close()")
        if params.max_new_tokens < 1:
            raise MathsftError("hf backend: max_new_tokens must be >= 1")
        eos_ids = self.eos_ids | {self.special_ids[s] for s in params.stop if s in self.special_ids}
        rows: list[_Row] = []
        for index, request in enumerate(requests):
            if request.n < 1:
                raise MathsftError(f"hf backend: request {index} asks for n={request.n} completions")
            ids = self.encode(request.prompt)
            self._check_length(index, len(ids), params)
            seed = request.seed if request.seed is not None else params.seed
            for sample in range(request.n):
                generator = None if params.greedy else completion_generator(seed, sample, self.device)
                rows.append(_Row(index, sample, ids, generator, eos_ids))
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        remaining = [r.n for r in requests]
        if not rows:
            return []

        def finish(row: _Row, reason: str, text: str) -> None:
            results[row.request][row.sample] = Completion(
                text=text,
                finish_reason=reason,
                prompt_tokens=len(row.prompt_ids),
                completion_tokens=len(row.tokens),
                latency_s=time.perf_counter() - row.started,
                # every generated id, including the EOS or the tokens that completed a stop string, and
                # which of them the calculator inserted (SFT and RL leave those out of the loss)
                extra={"token_ids": row.tokens, "tool_mask": row.tool, "tool_calls": _calls(row.tool)},
            )
            remaining[row.request] -= 1
            if remaining[row.request] == 0 and on_result is not None:
                on_result(row.request, requests[row.request], results[row.request])

        with torch.inference_mode():
            self._run(rows, params, finish)
        return results  # type: ignore[return-value]  # every slot was filled by finish()

    def _check_length(self, index: int, prompt_len: int, params: SamplingParams) -> None:
        """Refuse a request longer than the model's positions or its sliding window: nothing is truncated,
        and past the window the full-context masks built here would give wrong text without an error."""
        total = prompt_len + params.max_new_tokens
        sizes = f"{prompt_len} prompt tokens + max_new_tokens {params.max_new_tokens}"
        if self.max_positions is not None and total > self.max_positions:
            raise MathsftError(
                f"hf backend: request {index} needs {sizes} = {total} positions, more than the model's "
                f"max_position_embeddings ({self.max_positions}); shorten the prompt or lower max_new_tokens"
            )
        drafts = self.draft_tokens if params.greedy else 0  # verified drafts take cache positions too
        if drafts:
            total += drafts
            sizes += f" + draft_tokens {drafts}"
        if self.sliding_window is not None and total > self.sliding_window:
            raise MathsftError(
                f"hf backend: request {index} needs {sizes} = {total} positions, more than the model's "
                f"sliding window (config sliding_window = {self.sliding_window}), which this backend does "
                "not implement; use the vllm or openai backend, or shorten the request"
            )

    def _run(self, rows: list[_Row], params: SamplingParams, finish: Any) -> None:
        # longest prompts first: similar lengths prefill together and the cache width shrinks over time
        waiting = deque(sorted(rows, key=lambda r: -len(r.prompt_ids)))
        drafts = self.draft_tokens if params.greedy else 0  # drafts are verified exactly only when greedy
        # a row's padded step may write up to this many positions past its own (draft or tool tokens)
        slack = drafts + (TOOL_TOKENS if params.calculator else 0)
        max_len = max(len(r.prompt_ids) for r in rows) + params.max_new_tokens + slack
        slots = min(self.batch_size, len(rows))
        cache = SlotCache(self.model.config, slots, max_len, self.model.dtype, self.device)
        active: list[_Row] = []
        while waiting or active:
            if waiting and len(active) < slots:
                begin = len(active)
                admitted = self._admit(waiting, slots - begin, cache, begin, params)
                active += [row for row, _ in admitted]
                self._retire(active, [[first] for _, first in admitted], cache, params, finish, begin)
                continue
            proposals = [
                propose_drafts(
                    r.prompt_ids + r.tokens, min(drafts, params.max_new_tokens - len(r.tokens) - 1)
                )
                if drafts and len(r.feed) == 1
                else []
                for r in active
            ]
            # a calculator result enters the cache a token a step: padding every row of the batch to its
            # length would multiply the step's work (on CPU, 4.6 calls a response made decoding ~1.5x slower)
            feeding = [len(r.feed) > 1 for r in active]
            inputs = [
                r.feed[:1] if f else r.feed + d for r, f, d in zip(active, feeding, proposals, strict=True)
            ]
            q_len = max(len(x) for x in inputs)
            ids = [x + [x[-1]] * (q_len - len(x)) for x in inputs]
            pos = torch.tensor([r.position for r in active], device=self.device)[:, None] + torch.arange(
                q_len, device=self.device
            )
            cache.start, cache.write_pos, cache.width = 0, pos, int(pos.max()) + 1
            mask = torch.arange(cache.width, device=self.device)[None, None, :] <= pos[:, :, None]
            extra = {ROW_CHUNKS: row_chunks(pos, mask, self._mask)} if self.grouped_sdpa else {}
            logits = self.model(
                input_ids=torch.tensor(ids, device=self.device),
                position_ids=pos,
                attention_mask=self._mask(mask[:, None]),
                **{self.cache_arg: cache},
                **extra,
                use_cache=True,
            ).logits
            last = [len(r.feed) - 1 for r in active]  # the position that predicts each row's next token
            if not any(proposals):
                new = [[] for _ in active]  # a feeding row samples nothing this step
                going = [i for i, f in enumerate(feeding) if not f]
                if going:
                    picked = logits[torch.tensor(going), torch.tensor([last[i] for i in going])]
                    sampled = sample_next(picked, params, [active[i].generator for i in going]).tolist()
                    for i, token in zip(going, sampled, strict=True):
                        new[i] = [token]
            else:  # greedy: keep each draft token while it is the argmax, then the argmax after it
                targets = greedy_tokens(logits).tolist()
                new = [
                    [] if f else accept_drafts(d, t[k:])
                    for d, t, k, f in zip(proposals, targets, last, feeding, strict=True)
                ]
                self.draft_stats["proposed"] += sum(len(d) for d in proposals)
                self.draft_stats["accepted"] += sum(len(n) - 1 for n in new)
            self._retire(active, new, cache, params, finish, 0)

    def _admit(
        self, waiting: deque[_Row], free: int, cache: SlotCache, start: int, params: SamplingParams
    ) -> list[tuple[_Row, int]]:
        """Prefill up to ``free`` waiting rows into slots ``start..``; returns each row with its first token.

        The samples of one request share their prompt: it is prefilled once, in the slot of the request's
        first row, and its keys/values copied to the slots of the others (as vLLM's prefix caching does
        for n > 1), which then sample their first token from the same logits with their own generators.
        """
        group = [waiting.popleft()]
        prompts = 1  # distinct prompts in the group: what the prefill computes
        budget = max(self.prefill_batch_tokens, len(group[0].prompt_ids))
        while waiting and len(group) < free:
            fresh = waiting[0].request != group[-1].request  # a request's rows are adjacent in `waiting`
            if fresh and len(group[0].prompt_ids) * (prompts + 1) > budget:
                break
            group.append(waiting.popleft())
            prompts += fresh
        # one leader per request takes the first slots and is prefilled; its followers copy its cache
        leads = [i == 0 or r.request != group[i - 1].request for i, r in enumerate(group)]
        leaders = [r for r, lead in zip(group, leads, strict=True) if lead]
        slot_of = {r.request: start + i for i, r in enumerate(leaders)}
        group = leaders + [r for r, lead in zip(group, leads, strict=True) if not lead]
        logits = self._prefill(leaders, cache, start)
        if len(group) > len(leaders):
            src = [slot_of[r.request] for r in group[len(leaders) :]]
            cache.copy_prefix(src, list(range(start + len(leaders), start + len(group))), cache.width)
        last = logits[torch.tensor([slot_of[r.request] - start for r in group])]
        now = time.perf_counter()
        for row in group:
            row.started = now
            row.position = len(row.prompt_ids)
        first = sample_next(last, params, [r.generator for r in group]).tolist()
        return list(zip(group, first, strict=True))

    def _prefill(self, group: list[_Row], cache: SlotCache, start: int) -> torch.Tensor:
        """Forward the prompts of ``group`` (longest first) into slots ``start..``; each row's last logits."""
        lengths = [len(r.prompt_ids) for r in group]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor(
            [r.prompt_ids + [pad] * (width - len(r.prompt_ids)) for r in group], device=self.device
        )
        lens = torch.tensor(lengths, device=self.device)
        cols = torch.arange(width, device=self.device)
        # right padding: row i sees columns <= its query position and < its length
        mask = (cols[None, None, :] <= cols[None, :, None]) & (cols[None, None, :] < lens[:, None, None])
        cache.start, cache.write_pos, cache.width = start, None, width
        ends = sorted(set(lengths))
        logits = self.model(
            input_ids=ids,
            position_ids=cols[None, :].expand(len(group), -1),
            attention_mask=self._mask(mask[:, None]),
            **{self.cache_arg: cache},
            use_cache=True,
            logits_to_keep=torch.tensor([e - 1 for e in ends], device=self.device),
        ).logits
        return logits[torch.arange(len(group)), torch.tensor([ends.index(n) for n in lengths])]

    def _retire(
        self,
        active: list[_Row],
        new: list[list[int]],
        cache: SlotCache,
        params: SamplingParams,
        finish: Any,
        begin: int,
    ) -> None:
        """Record the new tokens of rows ``begin..`` (``new[i - begin]``); finish those that hit EOS, a stop
        string or the limit and refill their slots (``refill_order``) so that rows stay in slots 0..B-1."""
        i, fresh = begin, list(new)
        while i < len(active):
            row = active[i]
            done = self._advance(row, fresh[i - begin], params)
            if done is None:
                i += 1
                continue
            finish(row, *done)
            for src, dst in refill_order([r.position for r in active], i):
                # every row moved is one of the forward's: what it holds lies below that forward's width
                cache.move(src, dst, cache.width)
                active[dst] = active[src]
                fresh[dst - begin] = fresh[src - begin]
            active.pop()
            fresh.pop()

    def _advance(self, row: _Row, tokens: list[int], params: SamplingParams) -> tuple[str, str] | None:
        """Append ``tokens`` (a sampled token, or accepted drafts and the argmax after them) to ``row``: its
        fed tokens and the drafts before the last new one are now in the cache, the last one is fed next.
        Returns ``(finish_reason, text)`` when the row ends (tokens after that point are dropped). A
        calculator call the tokens complete cuts them there and queues the tool's result to be fed too."""
        if not tokens:  # one token of a calculator result went into the cache: the next one is fed next
            row.position += 1
            row.feed = row.feed[1:]
            return None
        forced: list[int] = []
        kept = 0
        for token in tokens:
            row.tokens.append(token)
            row.tool.append(False)
            kept += 1
            done = self._finished(row, token, params)
            if done is not None:
                return done
            forced = self._calculator(row, token) if params.calculator else []
            if forced:
                break
        row.position += len(row.feed) + kept - 1
        forced = forced[: params.max_new_tokens - len(row.tokens)]
        row.feed = [row.tokens[-1], *forced]
        row.tokens += forced
        row.tool += [True] * len(forced)
        return self._finished(row, forced[-1], params) if forced else None

    def _calculator(self, row: _Row, token: int) -> list[int]:
        """The tokens of the calculator's result when ``token`` closes a call (``<<48/2=``), else []."""
        if not self._decode([token]).endswith("="):
            return []
        result = call_result(self._decode(row.tokens[-TOOL_LOOKBACK:]))
        return [] if result is None else self.tokenizer(result, add_special_tokens=False)["input_ids"]

    def _finished(self, row: _Row, token: int, params: SamplingParams) -> tuple[str, str] | None:
        """``(finish_reason, text)`` once ``token`` (just appended) ends the row, else None."""
        if token in row.eos_ids:
            return "stop", self._decode(row.tokens[:-1])
        text = self._decode(row.tokens) if params.stop else None
        cut = _first_stop(text, params.stop) if text is not None else None
        if cut is not None:
            return "stop", text[:cut]
        if len(row.tokens) >= params.max_new_tokens:
            return "length", text if text is not None else self._decode(row.tokens)
        return None

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        """The additive mask every layer adds to its scores, built once per forward: SDPA given a boolean
        mask converts it to this form again in each of the model's layers."""
        return torch.zeros(allowed.shape, dtype=self.model.dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(self.model.dtype).min
        )

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=self.skip_special_tokens)


def row_chunks(pos: torch.Tensor, allowed: torch.Tensor, additive: Any) -> list[RowChunk]:
    """The decode step's rows in runs of ``CHUNK_ROWS``, each attending only as far as its longest row:
    ``pos`` is ``[rows, q_len]`` write positions, ``allowed`` the ``[rows, q_len, width]`` boolean mask and
    ``additive`` what turns a boolean mask into the model's additive one."""
    reach = (pos[:, -1] + 1).tolist()
    chunks = []
    for start in range(0, len(reach), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(reach))
        width = max(reach[start:stop])
        chunks.append(RowChunk(start, stop, width, additive(allowed[start:stop, None, :, :width])))
    return chunks


def refill_order(positions: list[int], hole: int) -> list[tuple[int, int]]:
    """The ``(src, dst)`` slot moves that refill ``hole`` when its row ends, the last slot left empty.

    Rows are admitted longest prompt first and all advance a token a step, so slots run roughly from the
    longest row to the shortest; chunked attention (``row_chunks``) reads less the better that holds. The
    hole takes the longest row of the next chunk, whose own hole takes the longest of the chunk after, and
    so on (at most one move per chunk); the last row fills the hole that reaches the last chunk.
    """
    last = len(positions) - 1
    moves = []
    while (after := (hole // CHUNK_ROWS + 1) * CHUNK_ROWS) < last:
        src = max(range(after, min(after + CHUNK_ROWS, last + 1)), key=positions.__getitem__)
        moves.append((src, hole))
        hole = src
    if hole != last:
        moves.append((last, hole))
    return moves


def _calls(tool: list[bool]) -> int:
    """How many calculator results a row holds (runs of inserted tokens)."""
    return sum(1 for i, inserted in enumerate(tool) if inserted and (i == 0 or not tool[i - 1]))


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def propose_drafts(tokens: Sequence[int], k: int, max_ngram: int = 3, min_ngram: int = 2) -> list[int]:
    """Prompt-lookup drafts: the ``k`` tokens that followed the latest earlier occurrence of the sequence's
    last n-gram (longest n first). Free to compute, and often right when a model copies from its prompt
    or repeats itself."""
    if k < 1 or len(tokens) <= min_ngram:
        return []
    seq = np.asarray(tokens)
    for n in range(min(max_ngram, len(seq) - 1), min_ngram - 1, -1):
        windows = np.lib.stride_tricks.sliding_window_view(seq[:-1], n)  # every n-gram but the last one
        hits = np.flatnonzero((windows == seq[-n:]).all(axis=1))
        if hits.size:
            start = int(hits[-1]) + n
            return seq[start : start + k].tolist()
    return []


def accept_drafts(drafts: Sequence[int], targets: Sequence[int]) -> list[int]:
    """Greedy verification: ``targets[j]`` is the argmax after the row's token and ``drafts[:j]``. Keeps the
    drafts that match, then the first argmax that differs (or follows them all): always >= 1 token, exactly
    what one-token-at-a-time greedy decoding would have produced."""
    accepted = []
    for draft, target in zip(drafts, targets, strict=False):
        if draft != target:
            break
        accepted.append(draft)
    return [*accepted, targets[len(accepted)]]
