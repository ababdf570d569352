"""Training loops: plain training with any loss, and CAP's bilevel training with hypergradients.

Smoke runs are full-batch (``batch_size: 0``) with Adam on tiny models; the paper profile is Cao et
al.'s CIFAR recipe (SGD momentum 0.9, batch 128, 5 warm-up epochs, lr x0.01 at 80% and x0.0001 at 90%
of training) with random-crop / flip augmentation written in torch (no torchvision).

The bilevel update follows AutoBalance's online approximation (arXiv 2201.01212, Alg. 1; also
Meta-Weight-Net): before each model step, take a virtual SGD step of the model on the training loss
under the current loss parameters, evaluate the validation objective at the virtual weights, and
follow its gradient with respect to the hyperparameter model (the hypergradient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from methods.cap.hyper import ClassHyperparameters, objective_value, per_class_losses
from methods.cap.losses import parametric_loss
from methods.core.training import cosine_schedule

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (logits, targets, progress) -> loss
StepHook = Callable[[int, float, torch.Tensor, torch.Tensor], None]


@dataclass
class OptimConfig:
    steps: int = 300
    batch_size: int = 0  # 0: full batch
    lr: float = 0.01
    weight_decay: float = 1e-4
    optimizer: str = "adam"  # adam (cosine decay) | sgd (Cao et al.'s step schedule)
    augment: bool = False  # random crop (pad 4) and horizontal flip, for images
    log_every: int = 100


def make_optimizer(params, cfg: OptimConfig) -> tuple[torch.optim.Optimizer,
                                                      torch.optim.lr_scheduler.LRScheduler]:
    params = list(params)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return opt, cosine_schedule(opt, cfg.steps, warmup=0.0)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        warm = max(1, cfg.steps // 40)  # 5 of 200 epochs

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 1.0 if step < 0.8 * cfg.steps else 0.01 if step < 0.9 * cfg.steps else 1e-4

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
    raise ValueError(f"unknown optimizer '{cfg.optimizer}'; known: adam, sgd")


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-image random crop of a zero-padded image and random horizontal flip, vectorised."""
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    rows = dy[:, None] + torch.arange(h, device=images.device)
    cols = dx[:, None] + torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(b, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, cfg: OptimConfig,
        generator: torch.Generator, log: Callable[[str], None] = print,
        on_step: StepHook | None = None) -> None:
    """Train ``model`` on (x, y) with ``loss_fn``; ``on_step`` runs before each step (bilevel updates)."""
    opt, sched = make_optimizer(model.parameters(), cfg)
    n = y.shape[0]
    full = not cfg.batch_size or cfg.batch_size >= n
    perm, pos = torch.randperm(n, generator=generator), 0
    for step in range(cfg.steps):
        progress = step / cfg.steps
        if full:
            xb, yb = x, y
        else:
            if pos + cfg.batch_size > n:
                perm, pos = torch.randperm(n, generator=generator), 0
            idx = perm[pos:pos + cfg.batch_size].to(x.device)
            pos += cfg.batch_size
            xb, yb = x[idx], y[idx]
        if cfg.augment:
            xb = random_crop_flip(xb, generator)
        if on_step is not None:
            on_step(step, progress, xb, yb)
        model.train()
        loss = loss_fn(model(xb), yb, progress)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            log(f"step {step + 1}/{cfg.steps} loss {loss.item():.4f}")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]).float()


@dataclass
class BilevelConfig:
    objective: str = "balanced"
    hyper_lr: float = 0.02
    inner_lr: float = 0.1  # the virtual step's learning rate
    warmup: float = 0.1  # fraction of training before the first hyper step
    every: int = 1  # hyper step every this many model steps
    refresh_every: int = 50  # re-measure validation difficulty every this many steps (0: never)
    worst_sharpness: float = 5.0
    std_weight: float = 1.0
    surrogate: str = "ce"  # per-class validation loss: ce | soft_error


class HypergradientStep:
    """The ``on_step`` hook of bilevel training: one hyperparameter update per call (when due)."""

    def __init__(self, model: nn.Module, hyper: ClassHyperparameters, x_val: torch.Tensor,
                 y_val: torch.Tensor,
                 num_classes: int, cfg: BilevelConfig, test_weights: torch.Tensor | None = None,
                 refresh: Callable[[], None] | None = None):
        self.model, self.hyper, self.x_val, self.y_val = model, hyper, x_val, y_val
        self.num_classes, self.cfg, self.test_weights, self.refresh = num_classes, cfg, test_weights, refresh
        self.opt = torch.optim.Adam(hyper.parameters(), lr=cfg.hyper_lr)
        self.history: list[float] = []

    def __call__(self, step: int, progress: float, xb: torch.Tensor, yb: torch.Tensor) -> None:
        if self.refresh is not None and self.cfg.refresh_every and step % self.cfg.refresh_every == 0:
            self.refresh()
        if progress < self.cfg.warmup or step % self.cfg.every:
            return
        params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        terms = self.hyper()
        train_loss = parametric_loss(functional_call(self.model, (params, buffers), (xb,)), yb, **terms)
        grads = torch.autograd.grad(train_loss, list(params.values()), create_graph=True)
        virtual = {name: p - self.cfg.inner_lr * g
                   for (name, p), g in zip(params.items(), grads, strict=True)}
        val_logits = functional_call(self.model, (virtual, buffers), (self.x_val,))
        class_losses = per_class_losses(val_logits, self.y_val, self.num_classes, self.cfg.surrogate)
        value = objective_value(class_losses, self.cfg.objective,
                                self.test_weights, self.cfg.worst_sharpness, self.cfg.std_weight)
        self.opt.zero_grad(set_to_none=True)
        value.backward(inputs=list(self.hyper.parameters()))
        self.opt.step()
        self.history.append(value.item())


def fit_posthoc(hyper: ClassHyperparameters, val_logits: torch.Tensor, y_val: torch.Tensor, num_classes: int,
                cfg: BilevelConfig, steps: int, test_weights: torch.Tensor | None = None) -> list[float]:
    """Post-hoc adjustment: fit (delta, iota) of ``delta * z + iota`` on the validation logits."""
    opt = torch.optim.Adam(hyper.parameters(), lr=cfg.hyper_lr)
    history = []
    for _ in range(steps):
        class_losses = per_class_losses(adjust(val_logits, hyper()), y_val, num_classes, cfg.surrogate)
        value = objective_value(class_losses,
                                cfg.objective, test_weights, cfg.worst_sharpness, cfg.std_weight)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        history.append(value.item())
    return history


def adjust(logits: torch.Tensor, terms: dict[str, torch.Tensor | None]) -> torch.Tensor:
    out = logits
    if terms.get("delta") is not None:
        out = out * terms["delta"]
    if terms.get("iota") is not None:
        out = out + terms["iota"]
    return out
