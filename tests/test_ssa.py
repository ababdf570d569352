"""SSA: temperatures start at the identity, each can be switched off, and the extra parameters stay
under the paper's 0.5% (arXiv 2411.12892, abstract)."""

from __future__ import annotations

import math

import pytest
import torch

from methods.nn import LMConfig, TinyLM
from methods.nn.mixers.attention import Attention
from methods.nn.mixers.ssa import SelectiveAttention, SelectiveTemperature
from methods.ssa.run import SSAArgs, extra_parameters


def test_ssa_at_identity_temperatures_equals_vanilla_attention() -> None:
    torch.manual_seed(0)
    ssa = SelectiveAttention(16, 2, position_param="linear")
    vanilla = Attention(16, 2)
    vanilla.load_state_dict({k: v for k, v in ssa.state_dict().items() if "temperature" not in k})
    x = torch.randn(3, 11, 16)
    assert torch.allclose(ssa(x), vanilla(x), atol=1e-6)


def test_official_position_temperature_matches_released_formula() -> None:
    temp = SelectiveTemperature(1, 4, query=False, value=False, position_param="official")
    q = torch.ones(1, 1, 5, 4)
    expected = 1 + math.exp(-math.exp(2.0)) * torch.log(torch.arange(1, 6.0))
    assert torch.allclose(temp.query_scale(q).flatten(), expected)


def test_query_temperature_sharpens_some_queries_and_flattens_others() -> None:
    temp = SelectiveTemperature(1, 2, position=False, value=False)
    with torch.no_grad():
        temp.query_vec.copy_(torch.tensor([[1.0, 0.0]]))
    q = torch.tensor([[[[2.0, 0.0], [-2.0, 0.0]]]])
    scale = temp.query_scale(q).flatten()
    assert scale[0] > 1 > scale[1] > 0


def test_value_temperature_rescales_values_per_token() -> None:
    temp = SelectiveTemperature(1, 2, query=False, position=False)
    with torch.no_grad():
        temp.value_vec.fill_(1.0)
    v = torch.tensor([[[[3.0, 0.0], [-3.0, 0.0]]]])
    _, scaled = temp.apply(torch.zeros(1, 1, 2, 2), v)
    assert abs(scaled[0, 0, 0, 0]) > 3 > abs(scaled[0, 0, 1, 0])


@pytest.mark.parametrize("flags,expected", [((True, False, False), 16), ((False, True, False), 1),
                                            ((False, False, True), 16), ((True, True, True), 33)])
def test_each_temperature_can_be_switched_for_the_ablation(flags, expected) -> None:
    query, position, value = flags
    model = TinyLM(LMConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, mixer="ssa",
                            mixer_args={"query": query, "position": position, "value": value}))
    assert extra_parameters(model) == expected


def test_ssa_extra_parameters_stay_under_half_a_percent_at_smoke_size() -> None:
    args = SSAArgs(n_layers=2, d_model=64, n_heads=2)
    model = TinyLM(LMConfig(vocab_size=101, d_model=64, n_layers=2, n_heads=2, mixer="ssa",
                            mixer_args=args.mixer_args()))
    extra = extra_parameters(model)
    assert extra == 2 * (2 * 64 + 1)
    assert extra / (model.num_parameters() - extra) < 0.005
