"""One-layer linear attention for in-context regression and its one-step test-time training.

Following arXiv 2503.11842 (Section 3), the linear-attention prediction for a query ``x`` given a context
``(X, y)`` of ``n`` rows reduces to one trainable ``d x d`` matrix ``W``::

    y_hat(x) = x^T W u,        u = X^T y / n

Test-time training takes one gradient step on ``k`` labelled rows ``(X_k, y_k)`` of the target task with
the context held fixed. With loss ``L(W) = (1/k) ||y_k - X_k W u||^2`` the step is the rank-one update of
the paper's Proposition 3.1::

    W_tt = W + (2 eta / k) X_k^T (y_k - X_k W u) u^T

Everything here is batched over tasks; each task gets its own ``W_tt`` without materialising it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def context_summary(context_x: torch.Tensor, context_y: torch.Tensor) -> torch.Tensor:
    """u = X^T y / n per task: (T, n, d), (T, n) -> (T, d)."""
    return torch.einsum("tnd,tn->td", context_x, context_y) / context_x.shape[1]


def predict(weight: torch.Tensor, context_x: torch.Tensor, context_y: torch.Tensor,
            query_x: torch.Tensor) -> torch.Tensor:
    """Linear-attention predictions x_q^T W u for every query of every task: -> (T, q)."""
    u = context_summary(context_x, context_y)
    return torch.einsum("tqd,de,te->tq", query_x, weight, u)


def ttt_predict(weight: torch.Tensor, context_x: torch.Tensor, context_y: torch.Tensor, ttt_x: torch.Tensor,
                ttt_y: torch.Tensor, query_x: torch.Tensor, step_sizes: torch.Tensor) -> torch.Tensor:
    """Query predictions after one TTT gradient step, for several step sizes at once: -> (S, T, q).

    With ``g = (2/k) X_k^T r`` (r the TTT residuals) the updated model predicts
    ``x^T W u + eta (x^T g)(u^T u)``, the rank-one update applied without forming ``W_tt``.
    """
    u = context_summary(context_x, context_y)
    residual = ttt_y - torch.einsum("tkd,de,te->tk", ttt_x, weight, u)
    grad_dir = 2.0 * torch.einsum("tkd,tk->td", ttt_x, residual) / ttt_x.shape[1]
    base = torch.einsum("tqd,de,te->tq", query_x, weight, u)
    correction = torch.einsum("tqd,td->tq", query_x, grad_dir) * (u * u).sum(-1, keepdim=True)
    return base[None] + step_sizes[:, None, None] * correction[None]


def ttt_weight(weight: torch.Tensor, context_x: torch.Tensor, context_y: torch.Tensor, ttt_x: torch.Tensor,
               ttt_y: torch.Tensor, step_size: float) -> torch.Tensor:
    """The updated matrix W_tt of one task (unbatched: (n, d), (n,), (k, d), (k,)); for checks and tests."""
    u = context_x.T @ context_y / context_x.shape[0]
    residual = ttt_y - ttt_x @ weight @ u
    return weight + (2.0 * step_size / ttt_x.shape[0]) * torch.outer(ttt_x.T @ residual, u)


def pretrain(sample: Callable[[int], tuple[torch.Tensor, ...]], dim: int, steps: int, batch: int, lr: float,
             log: Callable[[str], None] | None = None) -> torch.Tensor:
    """Fit W by Adam on fresh pretraining prompts (``sample(batch)`` -> context and query tensors)."""
    weight = torch.zeros(dim, dim, requires_grad=True)
    opt = torch.optim.Adam([weight], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(1, steps + 1):
        context_x, context_y, query_x, query_y = sample(batch)
        loss = ((predict(weight, context_x, context_y, query_x) - query_y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % max(1, steps // 4) == 0 or step == steps):
            log(f"pretrain n={context_x.shape[1]} step {step}/{steps}: mse {loss.item():.4f}")
    return weight.detach()
