"""One process or many (``torchrun``): the few places where training differs.

Under ``torchrun`` the model is sharded with FSDP2 (``fully_shard`` per decoder layer, then the root), each
step's examples are dealt to ranks balancing tokens, the loss is normalized by the global supervised-token
count (all-reduced before the first backward), rank 0 logs and writes the HF export, and resume state is
saved with ``torch.distributed.checkpoint`` (sharded, same world size). A peft (LoRA) model is sharded the
same way: FSDP2 shards per parameter, so frozen base weights and trainable adapters share a layer's unit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist

from mathsft.errors import MathsftError
from mathsft.training import checkpoint as ckpt
from mathsft.training.packing import micro_batches
from mathsft.training.tokenize import Tokenized


def balance(rows: list[Tokenized], world: int) -> list[list[int]]:
    """Deal row indices to ``world`` ranks, longest first to the rank with fewest tokens (deterministic)."""
    loads = [0] * world
    counts = [0] * world
    parts: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(rows)), key=lambda i: (-len(rows[i]), i)):
        rank = min(range(world), key=lambda r: (loads[r], counts[r], r))
        parts[rank].append(i)
        loads[rank] += len(rows[i])
        counts[rank] += 1
    return [sorted(p) for p in parts]


def unsharded(model: Any, full: dict[str, torch.Tensor]) -> Any:
    """A plain HF model (CPU) holding ``full``, the gathered state dict of the sharded ``model``; LoRA
    adapters are merged into the base weights, as one-process checkpoints are."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    if hasattr(model, "peft_config"):
        from peft import get_peft_model

        plain = get_peft_model(plain, model.peft_config[model.active_adapter])
    plain.load_state_dict(full, assign=True)
    # assign=True gave a tied head its own tensor: re-tie before merging (peft unties what it finds apart)
    (plain.get_base_model() if hasattr(plain, "get_base_model") else plain).tie_weights()
    if hasattr(plain, "merge_and_unload"):
        plain = plain.merge_and_unload()
    plain.generation_config = model.generation_config
    return plain


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        cuda = torch.cuda.is_available()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda and local >= torch.cuda.device_count():
            raise MathsftError(
                f"process {local} of this node has no GPU of its own ({torch.cuda.device_count()} visible): "
                "launch at most one process per GPU, or hide the GPUs (CUDA_VISIBLE_DEVICES='') to train "
                "on CPU with gloo"
            )
        if not tdist.is_initialized():
            # generous: the other ranks wait at the next collective while rank 0 runs validation generation
            tdist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=2))
        device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        return cls(tdist.get_rank(), world, device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __enter__(self) -> Dist:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            # no rank may tear gloo down while a peer still talks to it (seen as a rare SIGABRT,
            # "terminate called without an active exception", on one rank at the end of a finished run)
            self.barrier()
        self.close()

    def close(self) -> None:
        if self.world > 1 and tdist.is_initialized():
            tdist.destroy_process_group()

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()

    # -- model ------------------------------------------------------------------------------------------

    def wrap(self, model: Any) -> Any:
        if self.world == 1:
            return model
        from torch.distributed.fsdp import fully_shard

        for layer in model.get_decoder().layers:
            fully_shard(layer)
        fully_shard(model)
        return model

    def clip_grad_norm(self, model: Any, max_norm: float | None) -> float:
        params = [p for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    # -- data and reductions ----------------------------------------------------------------------------

    def micro_batches(
        self, rows: list[Tokenized], packing: bool, micro_batch_tokens: int | None, grad_accum: int | None
    ) -> tuple[list[list[Tokenized]], int]:
        """This rank's micro-batches of one step's ``rows`` and how many trailing ones are fillers.

        Under FSDP every forward and backward is a collective, so all ranks must run the same number of
        passes: a rank with fewer micro-batches splits its largest ones, and a rank with nothing left to
        split (or no rows at all, at the ragged end of an epoch) runs the step's shortest row as a filler
        whose loss is multiplied by zero."""
        if self.world == 1:
            return micro_batches(rows, packing, micro_batch_tokens, grad_accum), 0
        mine = [rows[i] for i in balance(rows, self.world)[self.rank]]
        groups = [g for g in micro_batches(mine, packing, micro_batch_tokens, grad_accum) if g]
        count = torch.tensor([len(groups)], dtype=torch.float64)
        tdist.all_reduce(count, op=tdist.ReduceOp.MAX)
        want = int(count[0])
        while len(groups) < want and any(len(g) > 1 for g in groups):
            i = max((j for j, g in enumerate(groups) if len(g) > 1), key=lambda j: sum(map(len, groups[j])))
            half = len(groups[i]) // 2
            groups[i : i + 1] = [groups[i][:half], groups[i][half:]]
        fillers = want - len(groups)
        shortest = min(rows, key=len)
        return groups + [[shortest]] * fillers, fillers

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return tensor
        tensor = tensor.clone()
        tdist.all_reduce(tensor)
        return tensor

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (picklable objects, e.g. an RL step's graded rollouts)."""
        if self.world == 1:
            return value
        box = [value if self.is_main else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_float(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        tdist.broadcast(t, 0)
        return float(t[0])

    def full_weights(self, model: Any) -> dict[str, torch.Tensor]:
        """The model's HF-named weights (LoRA adapters merged) on rank 0, for a generation engine that
        takes them in place (``load_weights``); other ranks get ``{}``. Under FSDP every rank must call it
        (the weights are gathered)."""
        if self.world == 1:
            return ckpt.export_model(model).state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.is_main:
            return {}
        return unsharded(model, full).state_dict() if hasattr(model, "peft_config") else full

    # -- checkpoints ------------------------------------------------------------------------------------

    def save(
        self, folder: Path, name: str, model: Any, tokenizer: Any, optimizer: Any, state: dict[str, Any]
    ) -> Path:
        if self.world == 1:
            state = {**state, "optimizer": optimizer.state_dict()}
            if hasattr(model, "peft_config"):
                state["trainable"] = {
                    n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
                }
            return ckpt.save_checkpoint(folder, name, model, tokenizer, state)
        return self._save_sharded(folder, name, model, tokenizer, optimizer, state)

    def load(self, path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
        state = ckpt.load_trainer_state(path)
        if state.get("world_size", 1) != self.world:
            raise MathsftError(
                f"{path} was saved by {state.get('world_size', 1)} process(es); resume with the same number "
                f"(this run has {self.world})"
            )
        if self.world == 1:
            if "trainable" in state:
                model.load_state_dict(state["trainable"], strict=False)
            else:
                ckpt.load_weights(model, path)
            optimizer.load_state_dict(state["optimizer"])
            return state
        return self._load_sharded(path, model, optimizer, state)

    def _save_sharded(
        self, folder: Path, name: str, model: Any, tokenizer: Any, optimizer: Any, state: dict[str, Any]
    ) -> Path:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        tmp, target = folder / f".tmp-{name}", folder / name
        if self.is_main:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.barrier()
        # an optimizer that has not stepped yet is saved as nothing: get_optimizer_state_dict would first
        # initialise it with a zero-gradient step, and Adam's bias correction would then count that step
        stepped = bool(optimizer.state)
        if name != ckpt.FINAL:  # a finished run is never resumed: its HF export is all it needs
            sharded = {"model": get_model_state_dict(model)}
            if stepped:
                sharded["optim"] = get_optimizer_state_dict(model, optimizer)
            dcp.save(sharded, checkpoint_id=str(tmp / "dcp"))
            torch.save(ckpt.rng_state(), tmp / f"rng-rank{self.rank}.pt")
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        self.barrier()
        if self.is_main:
            unsharded(model, full).save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if name != ckpt.FINAL:  # without its sharded state a final is no place to resume from
                torch.save(
                    {**state, "world_size": self.world, "optimizer_stepped": stepped}, tmp / ckpt.STATE_FILE
                )
            if target.exists():
                import shutil

                shutil.rmtree(target)
            tmp.rename(target)
        self.barrier()
        return target

    def _load_sharded(self, path: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> dict[str, Any]:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        sharded = {"model": get_model_state_dict(model)}
        stepped = state.get("optimizer_stepped", True)
        if stepped:  # a fresh optimizer stays fresh when the saved one had not stepped either
            sharded["optim"] = get_optimizer_state_dict(model, optimizer)
        dcp.load(sharded, checkpoint_id=str(path / "dcp"))
        set_model_state_dict(model, sharded["model"])
        if stepped:
            set_optimizer_state_dict(model, optimizer, sharded["optim"])
        state["rng"] = torch.load(path / f"rng-rank{self.rank}.pt", weights_only=False)
        return state
