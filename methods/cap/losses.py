"""The long-tail losses, one formula each, all shared by every variant (and any other method of the suite).

Every loss here is a special case of one parametric family (AutoBalance, arXiv 2201.01212; CAP, arXiv
2401.14343, Eq. 2): with per-class multiplicative logit terms ``delta``, additive terms ``iota`` and
weights ``omega``,

    l(y, z) = -omega_y * log( exp(delta_y z_y + iota_y) / sum_j exp(delta_j z_j + iota_j) ).

* cross-entropy: delta = 1, iota = 0, omega = 1;
* logit-adjusted loss (Menon et al., arXiv 2007.07314, Eq. 10): iota_j = tau * log pi_j;
* post-hoc logit adjustment (ibid., Eq. 9): predict argmax_j z_j - tau * log pi_j (no training change);
* LDAM (Cao et al., arXiv 1906.07413, Eq. 13): subtract margin C / n_y^(1/4) from the true logit only,
  then scale by s; DRW defers the class-balanced weights (Cui et al., arXiv 1901.05555) to late training;
* VS loss (Kini et al., arXiv 2103.01550, Eq. 3): delta_j = (n_j / n_max)^gamma, iota_j = tau log pi_j;
* CDT (Ye et al., arXiv 2001.01385, Eq. 5): z_j / a_j with a_j = (n_max / n_j)^gamma, i.e. VS with tau=0.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_tensor(values: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def _check(logits: torch.Tensor, targets: torch.Tensor, per_class: torch.Tensor | None = None) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (batch, classes), got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must be (batch,), got {tuple(targets.shape)} for logits "
                         f"{tuple(logits.shape)}")
    if per_class is not None and per_class.shape[-1] != logits.shape[1]:
        raise ValueError(f"per-class vector has {per_class.shape[-1]} entries for {logits.shape[1]} classes")


def log_prior(class_counts: np.ndarray | torch.Tensor) -> torch.Tensor:
    """log pi_j from training label counts (a class with no example gets count 1 to stay finite)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp_min(1.0)
    return torch.log(counts / counts.sum()).float()


def weighted_ce(logits: torch.Tensor, targets: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over examples of ``-omega_y log softmax(z)_y`` (not renormalised by the weights; AutoBalance)."""
    per_example = F.cross_entropy(logits, targets, reduction="none")
    if weight is not None:
        per_example = per_example * weight[targets]
    return per_example.mean()


def parametric_loss(logits: torch.Tensor, targets: torch.Tensor, delta: torch.Tensor | None = None,
                    iota: torch.Tensor | None = None, omega: torch.Tensor | None = None) -> torch.Tensor:
    """The CAP / AutoBalance family ``-omega_y log softmax(delta * z + iota)_y``; None: the CE default."""
    _check(logits, targets)
    z = logits
    if delta is not None:
        _check(logits, targets, delta)
        z = z * delta
    if iota is not None:
        _check(logits, targets, iota)
        z = z + iota
    return weighted_ce(z, targets, omega)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    _check(logits, targets)
    return F.cross_entropy(logits, targets)


def logit_adjusted_loss(logits: torch.Tensor, targets: torch.Tensor, class_counts: np.ndarray,
                        tau: float = 1.0) -> torch.Tensor:
    """Menon et al. Eq. 10: ``-log softmax(z + tau log pi)_y``."""
    return parametric_loss(logits, targets, iota=tau * _as_tensor(log_prior(class_counts), logits))


def posthoc_adjusted_logits(logits: torch.Tensor, class_counts: np.ndarray, tau: float = 1.0) -> torch.Tensor:
    """Menon et al. Eq. 9: scores ``z - tau log pi`` whose argmax is the post-hoc adjusted prediction."""
    return logits - tau * _as_tensor(log_prior(class_counts), logits)


def ldam_margins(class_counts: np.ndarray, max_margin: float = 0.5) -> torch.Tensor:
    """Cao et al. Eq. 13: Delta_j = C / n_j^(1/4), C chosen so the largest margin is ``max_margin``."""
    inv = 1.0 / np.power(np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0), 0.25)
    return torch.as_tensor(inv * (max_margin / inv.max()), dtype=torch.float32)


def ldam_loss(logits: torch.Tensor, targets: torch.Tensor, class_counts: np.ndarray, max_margin: float = 0.5,
              scale: float = 30.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """LDAM: ``-w_y log softmax(s * (z - Delta_y e_y))_y`` (the margin only on the true class)."""
    _check(logits, targets)
    margins = _as_tensor(ldam_margins(class_counts, max_margin), logits)
    shifted = logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype) * margins[targets, None]
    return weighted_ce(scale * shifted, targets, weight)


def class_balanced_weights(class_counts: np.ndarray, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al.: w_j proportional to (1 - beta) / (1 - beta^n_j), normalised to sum to K (DRW's weights)."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return torch.as_tensor(w / w.sum() * len(counts), dtype=torch.float32)


def drw_weight(class_counts: np.ndarray, progress: float, start: float = 0.8,
               beta: float = 0.9999) -> torch.Tensor | None:
    """Deferred re-weighting: no weights before ``start`` (a fraction of training; Cao: epoch 160 of 200)."""
    return class_balanced_weights(class_counts, beta) if progress >= start else None


def vs_parameters(class_counts: np.ndarray, gamma: float = 0.2,
                  tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Kini et al.: delta_j = (n_j / n_max)^gamma, iota_j = tau log pi_j."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    delta = torch.as_tensor(np.power(counts / counts.max(), gamma), dtype=torch.float32)
    return delta, tau * log_prior(counts)


def vs_loss(logits: torch.Tensor, targets: torch.Tensor, class_counts: np.ndarray, gamma: float = 0.2,
            tau: float = 1.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    delta, iota = vs_parameters(class_counts, gamma, tau)
    return parametric_loss(logits, targets, _as_tensor(delta, logits), _as_tensor(iota, logits), weight)


def cdt_loss(logits: torch.Tensor, targets: torch.Tensor, class_counts: np.ndarray,
             gamma: float = 0.1) -> torch.Tensor:
    """Class-dependent temperatures: ``-log softmax(z / a)_y`` with a_j = (n_max / n_j)^gamma."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    temperature = _as_tensor(np.power(counts.max() / counts, gamma), logits)
    return parametric_loss(logits, targets, delta=1.0 / temperature)
