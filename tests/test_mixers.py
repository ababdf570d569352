import pytest
import torch

from methods.nn import MIXERS, LMConfig, TinyLM


@pytest.mark.parametrize("mixer", sorted(MIXERS))
def test_every_mixer_is_causal(mixer):
    torch.manual_seed(0)
    model = TinyLM(LMConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, mixer=mixer)).eval()
    x = torch.randint(0, 20, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 20  # change the future only
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :8], model(y)[:, :8], atol=1e-5)


def test_cat_is_position_free_so_it_runs_at_any_length():
    model = TinyLM(LMConfig(vocab_size=20, d_model=16, n_layers=1, mixer="cat")).eval()
    assert model(torch.randint(0, 20, (1, 300))).shape == (1, 300, 20)
