"""Architecture track: every mixer is causal and pluggable; LCAT reduces to CAT on one block; the new
token benchmarks build the examples their docstrings describe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import copying, lm_text, ngram_recall, passkey, selective_copying
from benchmarks.sequence import IGNORE
from methods.nn import MIXERS, LMConfig, TinyLM, build_mixer
from methods.nn.mixers.cat import ConvAttention
from methods.nn.mixers.lcat import LandmarkConvAttention

MIXER_ARGS = {"lcat": {"block": 4}, "mamba": {"d_state": 4}}


@pytest.mark.parametrize("name", sorted(MIXERS))
@pytest.mark.parametrize("training", [True, False])
def test_every_mixer_is_causal(name: str, training: bool) -> None:
    torch.manual_seed(0)
    mixer = build_mixer(name, 16, 2, **MIXER_ARGS.get(name, {})).train(training)
    x = torch.randn(2, 13, 16)
    y = mixer(x)
    x2 = x.clone()
    x2[:, 9:] = torch.randn(2, 4, 16)
    assert torch.allclose(mixer(x2)[:, :9], y[:, :9], atol=1e-5)
    assert y.shape == x.shape


def test_lcat_on_a_single_block_is_cat() -> None:
    torch.manual_seed(0)
    lcat = LandmarkConvAttention(16, 2, kernel=3, block=32).eval()
    cat = ConvAttention(16, 2, kernel=3)
    cat.load_state_dict({k: v for k, v in lcat.state_dict().items() if k != "landmark_filter"})
    x = torch.randn(2, 20, 16)
    assert torch.allclose(lcat(x), cat(x), atol=1e-5)


def test_tinylm_runs_with_the_mamba_mixer_on_cpu() -> None:
    model = TinyLM(LMConfig(vocab_size=11, d_model=16, n_layers=1, mixer="mamba", mixer_args={"d_state": 4}))
    assert model(torch.randint(0, 11, (2, 10))).shape == (2, 10, 11)


def test_copying_labels_repeat_the_source_after_the_separator() -> None:
    split = copying.generate(5, 32, 6, np.random.default_rng(0))
    src = split.inputs[:, 1:7]
    assert torch.equal(split.labels[:, 7:], src) and (split.labels[:, :7] == IGNORE).all()
    assert all(len(set(row.tolist())) == 6 for row in src)


def test_selective_copying_labels_are_the_data_tokens_in_order() -> None:
    split = selective_copying.generate(4, 20, 12, 3, np.random.default_rng(1))
    region = split.inputs[:, 1:13]
    for row, labels in zip(region, split.labels, strict=True):
        assert labels[labels != IGNORE].tolist() == row[row != selective_copying.NOISE].tolist()


def test_ngram_recall_answers_are_the_values_stored_under_each_ngram() -> None:
    args = ngram_recall.NgramRecallArgs(key_pool=3, num_kv_pairs=6)
    split = ngram_recall.generate(3, args, 6, np.random.default_rng(2))
    full = torch.cat([split.inputs, split.labels[:, -1:]], 1)
    for row, labels in zip(full, split.labels, strict=True):
        store = {tuple(row[i : i + 2].tolist()): row[i + 2].item() for i in range(0, 18, 3)}
        assert len(store) == 6
        for pos in (labels != IGNORE).nonzero().flatten().tolist():
            assert store[tuple(row[pos - 1 : pos + 1].tolist())] == labels[pos].item()


def test_passkey_answer_is_the_hidden_number() -> None:
    args = passkey.PasskeyArgs(num_digits=3)
    split = passkey.generate(6, args, 20, np.random.default_rng(3))
    for row, labels in zip(split.inputs, split.labels, strict=True):
        start = (row == passkey.PASS).nonzero().item() + 1
        assert labels[labels != IGNORE].tolist() == row[start : start + 3].tolist()
        assert row[-3].item() == passkey.QUERY


def test_length_multipliers_make_longer_test_splits() -> None:
    splits = copying.load(copying.CopyingArgs(copy_len=4, num_train=3, num_test=2), 0)
    assert [splits[k].inputs.shape[1] for k in ("test", "test_2x", "test_4x")] == [9, 17, 33]


def test_lm_text_splits_are_contiguous_and_disjoint() -> None:
    args = lm_text.LMTextArgs(seq_len=64, max_val_windows=8, max_test_windows=8)
    splits = lm_text.load(args, 0)
    assert splits["train"].inputs.shape[1] == 64 and len(splits["val"]) == 8
    assert torch.equal(splits["train"].inputs[0, 1:], splits["train"].labels[0, :-1])
    text = lm_text.encode(lm_text.corpus_text())
    a = int(len(text) * args.train_fraction)
    assert torch.equal(splits["train"].inputs[0], torch.from_numpy(text[:64]))
    assert splits["train"].inputs.numel() // 2 <= a
    nll = torch.full((8, 64), float(np.log(2.0)))
    assert lm_text.score(nll, splits["test"])["bits_per_char"] == pytest.approx(1.0)
