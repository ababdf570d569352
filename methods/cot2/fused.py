"""One SFT training step of the lean GPT-2 with a hand-derived backward pass (no autograd).

Why: at CoT2's sizes (d = 16..32, ~10 tokens, batch 16) a step is ~100 tiny kernels, and autograd's
graph recording, engine and per-parameter gradient accumulation cost as much as the kernels. Here the
forward keeps exactly the tensors the backward needs, and the backward writes every parameter gradient
straight into ``FlatAdamW``'s flat gradient buffer (``out=``), so a step is one forward, one backward
and one optimiser update with no bookkeeping. The maths is the model's (``methods.cot2.model.logits``:
pre-LN blocks, causal softmax attention scaled by 1/sqrt(head dim), tanh GELU, tied head);
``test_cot2_fused`` checks loss and every gradient against autograd.

All three supervisions are one loss over input *mixtures* ``X`` (one-hot rows for discrete tokens,
alpha* for CSFT's teacher-forced continuous tokens; the embedding is ``X @ W_te``) and output target
distributions ``Y`` at the last ``L`` positions::

    loss = -sum(Y * log_softmax(logits)) / B - c

which is CE summed over steps for discrete SFT, sum_t KL(alpha*_t || p_t) + CE(answer) for CSFT
(``c`` = the targets' entropy, no gradient) and CE on the answer for no-CoT; its gradient at the
logits is (softmax - Y) / B because every row of Y sums to 1.
Dropout is not supported here (the autograd path in ``methods.cot2.sft`` handles dropout > 0).

``compile=True`` hands the same function to ``torch.compile`` (one graph, no breaks): inductor fuses the
step's elementwise kernels, which at these sizes are most of its cost, at a one-off compile of ~10 CPU-s.
Results then agree with the eager step to float rounding, not bit for bit, so it is off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.core.seeding import inductor_follows_determinism
from methods.cot2.optim import FlatAdamW

_native_ln = torch.native_layer_norm
_ln_backward_into = torch.ops.aten.native_layer_norm_backward.out
_gelu_backward = torch.ops.aten.gelu_backward
_softmax_backward = torch.ops.aten._softmax_backward_data


def _ln_grads(grad_out: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
              ln: torch.nn.LayerNorm) -> torch.Tensor:
    """LayerNorm backward: weight/bias gradients written into their buffers, input gradient returned."""
    dx = torch.empty_like(x)
    _ln_backward_into(grad_out, x, ln.normalized_shape, mean, rstd, ln.weight, ln.bias, [True, True, True],
                      out0=dx, out1=ln.weight.grad, out2=ln.bias.grad)
    return dx


def supports(model) -> bool:
    """The fused step covers the model when no dropout is active."""
    cfg = model.config
    return not (cfg.resid_pdrop or cfg.embd_pdrop or cfg.attn_pdrop)


class FusedSFTStep:
    """Loss, gradients (into ``opt.grad``) and the AdamW update for one minibatch of mixtures."""

    def __init__(self, model, opt: FlatAdamW, compile: bool = False) -> None:
        if not supports(model):
            raise ValueError("the fused SFT step has no dropout; use methods.cot2.sft.supervised_loss")
        if any(p.grad is None for p in opt.params):
            raise ValueError("the optimiser must own the gradient buffer (FlatAdamW)")
        self.model, self.opt = model, opt
        cfg = model.config
        self.d, self.H = cfg.n_embd, cfg.n_head
        self.hd = self.d // self.H
        self.scale = self.hd ** -0.5
        self._mask: dict[tuple[int, torch.device], torch.Tensor] = {}
        if compile:
            inductor_follows_determinism()
        self._compiled = torch.compile(self._loss_and_grad, dynamic=False) if compile else None
        self.compiled_batch: int | None = None  # compiled steps take one batch size; others run eagerly

    def _causal(self, T: int, device: torch.device) -> torch.Tensor:
        if (T, device) not in self._mask:
            self._mask[T, device] = torch.full((T, T), float("-inf"), device=device).triu_(1)
        return self._mask[T, device]

    def __call__(self, X: torch.Tensor, Y: torch.Tensor, constant: float | torch.Tensor = 0.0) -> torch.Tensor:
        """X (B, T, V) input mixtures, Y (B, L, V) targets at the last L positions -> loss (detached)."""
        loss = self.loss_and_grad(X, Y, constant)
        self.opt.step()
        return loss

    def loss_and_grad(self, X: torch.Tensor, Y: torch.Tensor,
                      constant: float | torch.Tensor = 0.0) -> torch.Tensor:
        """The loss; every parameter gradient written into the optimiser's flat buffer."""
        mask = self._causal(X.shape[1], X.device)  # built outside a compiled graph (no recompiles)
        if self._compiled is not None:
            self.compiled_batch = self.compiled_batch or X.shape[0]
            if X.shape[0] == self.compiled_batch:  # an epoch's short last batch runs eagerly: no 2nd compile
                return self._compiled(X, Y, constant, mask)
        return self._loss_and_grad(X, Y, constant, mask)

    @torch.no_grad()
    def _loss_and_grad(self, X: torch.Tensor, Y: torch.Tensor, constant: float | torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        tr = self.model.transformer
        B, T, V = X.shape
        L = Y.shape[1]
        d, H, hd, eps = self.d, self.H, self.hd, tr.ln_f.eps
        BT, BH = B * T, B * H
        W = tr.wte.weight
        Xf = X.reshape(BT, V)
        # ---- forward, keeping what the backward needs
        pos = tr.wpe.weight[:T].expand(B, T, d).reshape(BT, d)  # one copy; ``repeat`` costs ~80 us here
        h = torch.addmm(pos, Xf, W)  # (BT, d) = X @ W_te + W_pe
        saved = []
        for blk in tr.h:
            a1, m1, r1 = _native_ln(h, (d,), blk.ln_1.weight, blk.ln_1.bias, eps)
            qkv = torch.addmm(blk.attn.c_attn.bias, a1, blk.attn.c_attn.weight)
            q, k, v = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4).reshape(3, BH, T, hd).unbind(0)
            p = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=self.scale).softmax(-1)
            o = torch.bmm(p, v).view(B, H, T, hd).transpose(1, 2).reshape(BT, d)
            h_mid = torch.addmm(blk.attn.c_proj.bias, o, blk.attn.c_proj.weight).add_(h)
            a2, m2, r2 = _native_ln(h_mid, (d,), blk.ln_2.weight, blk.ln_2.bias, eps)
            f = torch.addmm(blk.mlp.c_fc.bias, a2, blk.mlp.c_fc.weight)
            g = F.gelu(f, approximate="tanh")
            h_out = torch.addmm(blk.mlp.c_proj.bias, g, blk.mlp.c_proj.weight).add_(h_mid)
            saved.append((h, a1, m1, r1, q, k, v, p, o, h_mid, a2, m2, r2, f, g))
            h = h_out
        h_last = h.view(B, T, d)[:, T - L:].reshape(B * L, d)
        hf, mf, rf = _native_ln(h_last, (d,), tr.ln_f.weight, tr.ln_f.bias, eps)
        logp = (hf @ W.T).log_softmax(-1)  # (BL, V)
        Yf = Y.reshape(B * L, V)
        loss = torch.vdot(Yf.view(-1), logp.view(-1)).div_(-B).sub_(constant)
        # ---- backward: every gradient below is written in full (out=), except the unused positions
        tr.wpe.weight.grad[T:].zero_()
        dz = logp.exp_().sub_(Yf).div_(B)  # d loss / d logits
        torch.mm(dz.T, hf, out=W.grad)  # head part of the tied W_te gradient
        dh_last = _ln_grads(dz @ W, h_last, mf, rf, tr.ln_f)
        dh = torch.zeros(B, T, d, device=X.device)
        dh[:, T - L:] = dh_last.view(B, L, d)
        dh = dh.view(BT, d)
        for blk, (h_in, a1, m1, r1, q, k, v, p, o, h_mid, a2, m2, r2, f, g) in zip(
                reversed(tr.h), reversed(saved), strict=True):
            mlp, attn = blk.mlp, blk.attn
            torch.mm(g.T, dh, out=mlp.c_proj.weight.grad)
            torch.sum(dh, 0, out=mlp.c_proj.bias.grad)
            df = _gelu_backward(dh @ mlp.c_proj.weight.T, f, approximate="tanh")
            torch.mm(a2.T, df, out=mlp.c_fc.weight.grad)
            torch.sum(df, 0, out=mlp.c_fc.bias.grad)
            dh = dh + _ln_grads(df @ mlp.c_fc.weight.T, h_mid, m2, r2, blk.ln_2)
            torch.mm(o.T, dh, out=attn.c_proj.weight.grad)
            torch.sum(dh, 0, out=attn.c_proj.bias.grad)
            do = (dh @ attn.c_proj.weight.T).view(B, T, H, hd).transpose(1, 2).reshape(BH, T, hd)
            dqkv_heads = torch.empty(3, BH, T, hd, device=X.device)
            torch.bmm(p.transpose(1, 2), do, out=dqkv_heads[2])
            ds = _softmax_backward(torch.bmm(do, v.transpose(1, 2)), p, -1, p.dtype).mul_(self.scale)
            torch.bmm(ds, k, out=dqkv_heads[0])
            torch.bmm(ds.transpose(1, 2), q, out=dqkv_heads[1])
            dqkv = dqkv_heads.view(3, B, H, T, hd).permute(1, 3, 0, 2, 4).reshape(BT, 3 * d)
            torch.mm(a1.T, dqkv, out=attn.c_attn.weight.grad)
            torch.sum(dqkv, 0, out=attn.c_attn.bias.grad)
            dh = dh + _ln_grads(dqkv @ attn.c_attn.weight.T, h_in, m1, r1, blk.ln_1)
        torch.sum(dh.view(B, T, d), 0, out=tr.wpe.weight.grad[:T])
        W.grad.addmm_(Xf.T, dh)  # embedding part of the tied W_te gradient
        return loss


def sft_mixtures(kind: str, prompt: torch.Tensor, answer: torch.Tensor, trace: torch.Tensor,
                 targets: torch.Tensor | None, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, Y) of the fused loss for a supervision: input mixtures and output target distributions."""
    if kind not in ("no_cot", "discrete", "csft"):
        raise ValueError(f"unknown supervision '{kind}'")
    # each tensor is allocated once and filled in place (one-hot rows by scatter), the values of
    # ``F.one_hot(...).float()`` and ``torch.cat`` without their int64 and concatenation copies
    n, P = prompt.shape
    S = 0 if kind == "no_cot" else trace.shape[1]
    X = torch.zeros(n, P + S, vocab_size, device=prompt.device)
    Y = torch.zeros(n, S + 1, vocab_size, device=prompt.device)
    X[:, :P].scatter_(-1, prompt[..., None], 1.0)
    Y[:, S].scatter_(-1, answer[:, None], 1.0)
    if kind == "discrete":
        X[:, P:].scatter_(-1, trace[..., None], 1.0)
        Y[:, :S].scatter_(-1, trace[..., None], 1.0)
    elif kind == "csft":
        X[:, P:] = targets
        Y[:, :S] = targets
    return X, Y
