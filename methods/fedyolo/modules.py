"""Modules: the small trainable (and communicated) parts added to a frozen pretrained transformer.

Kinds (arXiv 2307.04905, Section 3 compares exactly these adaptation methods):

- ``full``    every weight of the encoder and the task head (the FedAvg baseline);
- ``head``    the task's linear head only (linear probing);
- ``lora``    low-rank updates of the attention query and value projections, through ``peft``
              (Hu et al., arXiv 2106.09685), plus the head;
- ``prompt``  visual prompt tuning, shallow: learned tokens inserted after the class token at the
              input of the first block (Jia et al., arXiv 2203.12119), plus the head;
- ``adapter`` bottleneck adapters after every block, ``h + up(gelu(down(h)))`` with ``up`` zero
              initialised so training starts from the pretrained function (Houlsby et al.,
              arXiv 1902.00751), plus the head.

Prompts and adapters are kept per task (``model.task_modules[task]``), so a client can hold one module
per task on a single frozen backbone: FedYolo's "you only load once".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods.fedyolo.vit import ViTClassifier

MODULE_KINDS = ("full", "head", "lora", "prompt", "adapter")
LORA_TARGETS = ("q_proj", "v_proj")  # Hu et al. (arXiv 2106.09685), Section 7.1: query and value


@dataclass
class ModuleSpec:
    kind: str = "lora"
    lora_rank: int = 1
    lora_alpha: float = 2.0
    prompt_tokens: int = 4
    adapter_dim: int = 2
    lora_targets: tuple[str, ...] = LORA_TARGETS  # names of the linear layers LoRA adapts

    def __post_init__(self) -> None:
        if self.kind not in MODULE_KINDS:
            raise ValueError(f"unknown module '{self.kind}'; known: {', '.join(MODULE_KINDS)}")
        self.lora_targets = tuple(self.lora_targets)
        if not self.lora_targets:
            raise ValueError("lora_targets is empty: name at least one linear layer, e.g. q_proj")


class TaskModule(nn.Module):
    """A task's prompts and/or adapters (the parts the hooks read when that task is active)."""

    def __init__(self, width: int, n_blocks: int, spec: ModuleSpec, generator: torch.Generator) -> None:
        super().__init__()
        self.prompts = None
        self.adapters = None
        if spec.kind == "prompt":
            self.prompts = nn.Parameter(torch.randn(1, spec.prompt_tokens, width, generator=generator) * 0.02)
        if spec.kind == "adapter":
            self.adapters = nn.ModuleList()
            for _ in range(n_blocks):
                down, up = nn.Linear(width, spec.adapter_dim), nn.Linear(spec.adapter_dim, width)
                with torch.no_grad():
                    down.weight.copy_(torch.randn(down.weight.shape, generator=generator) * width**-0.5)
                    down.bias.zero_()
                    up.weight.zero_()
                    up.bias.zero_()
                self.adapters.append(nn.Sequential(down, nn.GELU(), up))


def _install_hooks(model: ViTClassifier) -> None:
    """Once per model: the embeddings and block outputs consult the active task's module."""
    if getattr(model, "_fedyolo_hooks", False):
        return
    model.task_modules = nn.ModuleDict()
    model.active_task = None

    def active() -> TaskModule | None:
        return model.task_modules[model.active_task] if model.active_task in model.task_modules else None

    def after_embeddings(_mod, _inp, out):
        module = active()
        if module is None or module.prompts is None:
            return out
        prompts = module.prompts.expand(out.shape[0], -1, -1)
        return torch.cat([out[:, :1], prompts, out[:, 1:]], 1)

    def after_block(index: int):
        def hook(_mod, _inp, out):
            module = active()
            if module is None or module.adapters is None:
                return out
            hidden = out[0] if isinstance(out, tuple) else out
            hidden = hidden + module.adapters[index](hidden)
            return (hidden, *out[1:]) if isinstance(out, tuple) else hidden
        return hook

    model.embeddings.register_forward_hook(after_embeddings)
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(after_block(i))
    model._fedyolo_hooks = True


def attach(model: ViTClassifier, task: str, num_classes: int, spec: ModuleSpec,
           generator: torch.Generator) -> list[str]:
    """Add ``task``'s head and module to ``model``; return the names of the parameters it trains.

    Those parameters, and only they, are what a client sends to the server.
    """
    _install_hooks(model)
    model.add_head(task, num_classes, generator)
    names = [f"heads.{task}.{n}" for n, _ in model.heads[task].named_parameters()]
    if spec.kind == "full":
        names += [f"encoder.{n}" for n, _ in model.encoder.named_parameters() if "lora_" not in n]
    elif spec.kind == "lora":
        if any("lora_" in n for n, _ in model.named_parameters()):
            raise ValueError("one LoRA module per model: use prompt or adapter modules for several tasks")
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=spec.lora_rank, lora_alpha=spec.lora_alpha, target_modules=list(spec.lora_targets),
                            lora_dropout=0.0, bias="none")
        inject_adapter_in_model(config, model.encoder)
        with torch.no_grad():  # peft initialises A from the global RNG; redo it from ours (B stays 0)
            for n, p in model.encoder.named_parameters():
                if "lora_A" in n:
                    p.copy_(torch.randn(p.shape, generator=generator) * p.shape[1] ** -0.5)
        names += [f"encoder.{n}" for n, _ in model.encoder.named_parameters() if "lora_" in n]
    elif spec.kind in ("prompt", "adapter"):
        model.task_modules[task] = TaskModule(model.width, len(model.blocks), spec, generator)
        names += [f"task_modules.{task}.{n}" for n, _ in model.task_modules[task].named_parameters()]
    return names


def set_trainable(model: nn.Module, names: list[str]) -> list[nn.Parameter]:
    """Freeze everything but ``names``; return those parameters (in ``names`` order)."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"parameters not in the model: {missing[:3]}")
    for p in model.parameters():
        p.requires_grad_(False)
    for n in names:
        params[n].requires_grad_(True)
    return [params[n] for n in names]


def get_state(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].detach().clone() for n in names}


@torch.no_grad()
def set_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for n, value in state.items():
        params[n].copy_(value)
