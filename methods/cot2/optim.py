"""AdamW over one flat parameter buffer: the same update as ``torch.optim.AdamW``, in a handful of ops.

Tiny models spend most of an optimizer step in per-parameter dispatch; here every parameter (and its
gradient) is a view into one contiguous buffer, so a step is one fused AdamW kernel (``torch._fused_adamw_``,
the kernel behind ``torch.optim.AdamW(fused=True)``; ~7 tensor ops where it is missing) whatever the
parameter count.
``test_cot2_model`` checks it against ``torch.optim.AdamW`` step for step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class FlatAdamW:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        self.params = [p for p in dict.fromkeys(params) if p.requires_grad]  # tied weights once
        total = sum(p.numel() for p in self.params)
        ref = self.params[0]
        self.flat = torch.empty(total, dtype=ref.dtype, device=ref.device)
        self.grad = torch.zeros_like(self.flat)
        offset = 0
        for p in self.params:
            n = p.numel()
            self.flat[offset: offset + n].copy_(p.detach().reshape(-1))
            p.data = self.flat[offset: offset + n].view_as(p)
            p.grad = self.grad[offset: offset + n].view_as(p)  # backward accumulates in place here
            offset += n
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.steps = 0
        self._step_tensor = torch.zeros((), dtype=torch.float32, device=ref.device)
        self._fused = hasattr(torch, "_fused_adamw_") and ref.dtype in (torch.float32, torch.float64)

    def zero_grad(self) -> None:
        self.grad.zero_()  # never set a .grad to None: backward must keep accumulating into the buffer

    @torch.no_grad()
    def step(self, lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.steps += 1
        if self._fused:
            self._step_tensor.fill_(self.steps)
            torch._fused_adamw_([self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], [],
                                [self._step_tensor], lr=lr, beta1=b1, beta2=b2, weight_decay=self.weight_decay,
                                eps=self.eps, amsgrad=False, maximize=False)
            return
        g = self.grad
        self.flat.mul_(1 - lr * self.weight_decay)
        self.exp_avg.lerp_(g, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.exp_avg_sq / (1 - b2**self.steps)).sqrt_().add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-lr / (1 - b1**self.steps))

    def clip_grad_norm(self, max_norm: float) -> float:
        norm = float(self.grad.norm())
        if max_norm and norm > max_norm:
            self.grad.mul_(max_norm / (norm + 1e-6))
        return norm
