import numpy as np
import torch

from benchmarks.mqar import MQARArgs, generate, load
from benchmarks.sequence import IGNORE


def test_mqar_labels_are_the_values_bound_to_queried_keys():
    split = generate(50, vocab_size=32, seq_len=40, num_kv_pairs=4, power_a=0.01, rng=np.random.default_rng(0))
    for inputs, labels in zip(split.inputs.tolist(), split.labels.tolist(), strict=True):
        pairs = dict(zip(inputs[0:8:2], inputs[1:8:2], strict=True))
        assert all(1 <= k < 16 for k in pairs) and all(16 <= v < 32 for v in pairs.values())
        queried = [(inputs[i], lab) for i, lab in enumerate(labels) if lab != IGNORE]
        assert len(queried) == 4
        assert all(pairs[key] == value for key, value in queried)


def test_mqar_is_a_function_of_the_seed_and_has_longer_test_splits():
    args = MQARArgs(vocab_size=32, seq_len=24, num_kv_pairs=2, num_train=20, num_test=5)
    a, b = load(args, 7), load(args, 7)
    assert torch.equal(a["train"].inputs, b["train"].inputs)
    assert not torch.equal(a["train"].inputs, load(args, 8)["train"].inputs)
    assert a["test_4x"].inputs.shape == (5, 96)
