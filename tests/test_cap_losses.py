"""Each long-tail loss against its paper's formula, written out by hand on tiny tensors."""

import math

import numpy as np
import pytest
import torch

from methods.cap import losses

COUNTS = np.array([100, 30, 10, 1])
PI = COUNTS / COUNTS.sum()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 3, 3, 1])


def manual_ce(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> float:
    """-w_y log(exp z_y / sum_j exp z_j), averaged over examples, in plain Python."""
    total = 0.0
    for i in range(z.shape[0]):
        row = z[i].tolist()
        lse = math.log(sum(math.exp(v) for v in row))
        total += (1.0 if w is None else float(w[y[i]])) * (lse - row[int(y[i])])
    return total / z.shape[0]


def test_cross_entropy_is_minus_log_softmax_of_true_class(batch):
    z, y = batch
    assert losses.cross_entropy(z, y).item() == pytest.approx(manual_ce(z, y), rel=1e-5)


def test_logit_adjusted_loss_adds_tau_log_prior_to_every_logit(batch):
    # Menon et al. Eq. 10: l(y, f) = -log( e^{f_y + tau log pi_y} / sum_j e^{f_j + tau log pi_j} )
    z, y = batch
    tau = 1.5
    expected = manual_ce(z + tau * torch.tensor(np.log(PI), dtype=torch.float32), y)
    assert losses.logit_adjusted_loss(z, y, COUNTS, tau).item() == pytest.approx(expected, rel=1e-5)


def test_posthoc_adjustment_subtracts_tau_log_prior_and_favours_rare_classes():
    # Menon et al. Eq. 9: argmax_y f_y(x) - tau log pi_y
    z = torch.zeros(1, 4)
    adjusted = losses.posthoc_adjusted_logits(z, COUNTS, tau=1.0)
    assert torch.allclose(adjusted, -torch.tensor(np.log(PI), dtype=torch.float32)[None])
    assert adjusted.argmax(1).item() == 3  # the rarest class wins a tie of raw scores


def test_ldam_margin_scales_as_inverse_fourth_root_and_hits_only_the_true_class(batch):
    # Cao et al. Eq. 13: Delta_j = C / n_j^{1/4}, largest margin = max_m; loss on s * (z - Delta_y e_y)
    z, y = batch
    margins = losses.ldam_margins(COUNTS, max_margin=0.5)
    expected_m = (COUNTS ** -0.25) * 0.5 / (COUNTS.min() ** -0.25)
    assert np.allclose(margins.numpy(), expected_m, rtol=1e-6)
    shifted = z.clone()
    shifted[torch.arange(6), y] -= margins[y]
    assert losses.ldam_loss(z, y, COUNTS, 0.5, scale=30.0).item() == pytest.approx(
        manual_ce(30.0 * shifted, y), rel=1e-5)


def test_drw_waits_then_applies_class_balanced_weights_summing_to_k():
    assert losses.drw_weight(COUNTS, progress=0.5, start=0.8) is None
    w = losses.drw_weight(COUNTS, progress=0.9, start=0.8, beta=0.999)
    effective = (1 - 0.999 ** COUNTS) / (1 - 0.999)  # Cui et al.: effective number of samples
    assert np.allclose(w.numpy(), (1 / effective) / (1 / effective).sum() * 4, rtol=1e-5)
    assert w[3] > w[0]


def test_vs_loss_scales_logits_by_frequency_power_and_adds_log_prior(batch):
    # Kini et al. Eq. 3: -log( e^{Delta_y z_y + iota_y} / sum_j e^{Delta_j z_j + iota_j} ),
    # Delta_j = (n_j / n_max)^gamma, iota_j = tau log pi_j
    z, y = batch
    gamma, tau = 0.3, 1.0
    delta = torch.tensor((COUNTS / COUNTS.max()) ** gamma, dtype=torch.float32)
    iota = tau * torch.tensor(np.log(PI), dtype=torch.float32)
    expected = manual_ce(z * delta + iota, y)
    assert losses.vs_loss(z, y, COUNTS, gamma, tau).item() == pytest.approx(expected, rel=1e-5)


def test_cdt_divides_logits_by_class_temperatures(batch):
    # Ye et al. Eq. 5: a_j = (N_max / N_j)^gamma; logits z_j / a_j
    z, y = batch
    a = torch.tensor((COUNTS.max() / COUNTS) ** 0.2, dtype=torch.float32)
    assert losses.cdt_loss(z, y, COUNTS, 0.2).item() == pytest.approx(manual_ce(z / a, y), rel=1e-5)


def test_cdt_is_vs_without_the_additive_term(batch):
    z, y = batch
    assert losses.cdt_loss(z, y, COUNTS, 0.2).item() == pytest.approx(
        losses.vs_loss(z, y, COUNTS, 0.2, tau=0.0).item(), rel=1e-6)


def test_parametric_loss_reduces_to_ce_and_weights_examples_by_class(batch):
    z, y = batch
    assert losses.parametric_loss(z, y).item() == pytest.approx(manual_ce(z, y), rel=1e-5)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    assert losses.parametric_loss(z, y, omega=w).item() == pytest.approx(manual_ce(z, y, w), rel=1e-5)


def test_losses_reject_mismatched_shapes(batch):
    z, y = batch
    with pytest.raises(ValueError, match="targets"):
        losses.cross_entropy(z, y[:3])
    with pytest.raises(ValueError, match="per-class"):
        losses.parametric_loss(z, y, delta=torch.ones(3))
