"""CAP's pieces: long-tailed data, CIFAR's file format, attributes, the A2H model, fitting, one whole job."""

import pickle
import random

import numpy as np
import pytest
import torch

from benchmarks import cifar_lt, longtail, lt_gmm, lt_mnist1d
from methods.cap import losses
from methods.cap.attributes import ClassAttributes, class_difficulty, dictionary, frequency, knn_label_noise
from methods.cap.hyper import AttributeToHyper, FreePerClass, objective_value, per_class_losses
from methods.cap.models import build_model
from methods.cap.train import BilevelConfig, HypergradientStep, adjust, fit_posthoc, random_crop_flip


def test_long_tailed_counts_follow_caos_exponential_profile():
    counts = longtail.long_tailed_counts(5000, 10, 100.0)
    assert counts[0] == 5000 and counts[-1] == 50
    assert np.all(np.diff(counts) < 0)
    assert counts[5] == int(5000 * 100.0 ** (-5 / 9))


def test_splits_are_long_tailed_small_val_and_balanced_test():
    data = lt_gmm.load(lt_gmm.GMMArgs(num_classes=5, dim=4, n_max=100, imbalance=10.0, test_per_class=20), 0)
    assert data.train_counts.tolist() == longtail.long_tailed_counts(100, 5, 10.0).tolist()
    assert np.bincount(data.y_test.numpy()).tolist() == [20] * 5
    val = np.bincount(data.y_val.numpy())
    assert val[0] == 10 and val[-1] == 2  # 10% of train, at least 2
    assert data.test_weights.sum() == pytest.approx(1.0)


def test_same_seed_same_data_and_noise_flips_about_the_asked_share():
    args = lt_gmm.GMMArgs(num_classes=4, dim=3, n_max=2000, imbalance=1.0, noise_rate=0.3, test_per_class=5)
    a, b = lt_gmm.load(args, 7), lt_gmm.load(args, 7)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    flipped = (a.y_train != a.y_train_clean).float().mean().item()
    assert flipped == pytest.approx(0.3, abs=0.03)
    assert torch.equal(a.y_val, b.y_val)


def test_score_computes_per_class_error_summaries():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 0, 0, 0])  # class errors 0, 0.5, 1
    out = longtail.score(preds, labels, 3, np.array([0.5, 0.25, 0.25]))
    assert out["balanced_error"] == pytest.approx(0.5)
    assert out["balanced_accuracy"] == pytest.approx(0.5)
    assert out["worst_class_error"] == pytest.approx(1.0)
    assert out["std_class_error"] == pytest.approx(np.std([0, 0.5, 1]))
    assert out["weighted_error"] == pytest.approx(0.25 * 0.5 + 0.25 * 1.0)
    assert out["accuracy"] == pytest.approx(3 / 6)


def _write_cifar(root, dataset: str, per_class_train: int, per_class_test: int, num_classes: int):
    rng = np.random.default_rng(0)
    folder, train_files, test_files, key, _ = cifar_lt.LAYOUT[dataset]
    (root / folder).mkdir(parents=True)
    for files, per_class in ((train_files, per_class_train), (test_files, per_class_test)):
        labels = np.repeat(np.arange(num_classes), per_class)
        chunks = np.array_split(rng.permutation(labels), len(files))
        for name, chunk in zip(files, chunks, strict=True):
            batch = {b"data": rng.integers(0, 256, (len(chunk), 3072), dtype=np.uint8), key: chunk.tolist()}
            with open(root / folder / name, "wb") as fh:
                pickle.dump(batch, fh)


def test_cifar10_lt_loader_reads_cifar_pickles_from_a_local_folder(tmp_path):
    _write_cifar(tmp_path, "cifar10", per_class_train=60, per_class_test=8, num_classes=10)
    args = cifar_lt.CIFARLTArgs(root=str(tmp_path), dataset="cifar10", n_max=50, imbalance=10.0)
    data = cifar_lt.load(args, seed=0)
    assert data.x_train.shape[1:] == (3, 32, 32) and data.num_classes == 10
    assert data.train_counts.tolist() == longtail.long_tailed_counts(50, 10, 10.0).tolist()
    assert len(data.y_test) == 80  # CIFAR's whole balanced test set
    assert abs(float(data.x_train.mean())) < 0.1  # standardised with train statistics
    model = build_model("resnet32", data.input_shape, 10)
    assert model(data.x_test[:2]).shape == (2, 10)


def test_cifar100_lt_loader_uses_fine_labels(tmp_path):
    _write_cifar(tmp_path, "cifar100", per_class_train=6, per_class_test=2, num_classes=100)
    args = cifar_lt.CIFARLTArgs(root=str(tmp_path), dataset="cifar100", n_max=4, imbalance=4.0,
                                test_per_class=1)
    data = cifar_lt.load(args, seed=0)
    assert data.num_classes == 100 and len(data.y_test) == 100


def test_cifar_loader_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        cifar_lt.read_cifar(tmp_path, "cifar10")


def test_mnist1d_is_generated_offline_and_leaves_global_rng_untouched():
    np.random.seed(123)
    random.seed(123)
    x, y = lt_mnist1d.generate(200, seed=5)
    assert x.shape == (200, 40) and set(np.unique(y)) == set(range(10))
    assert np.random.rand() == np.random.RandomState(123).rand()
    assert random.random() == random.Random(123).random()


def test_random_crop_flip_keeps_shape_and_is_seeded():
    images = torch.randn(4, 3, 32, 32)
    a = random_crop_flip(images, torch.Generator().manual_seed(0))
    b = random_crop_flip(images, torch.Generator().manual_seed(0))
    assert a.shape == images.shape and torch.equal(a, b)


def test_knn_noise_estimate_is_higher_for_the_class_with_flipped_labels():
    g = torch.Generator().manual_seed(0)
    y_true = torch.arange(3).repeat_interleave(60)
    x = torch.randn(180, 2, generator=g) * 0.3 + torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[y_true]
    y = y_true.clone()
    idx = torch.nonzero(y_true == 2).squeeze(1)[:20]
    y[idx] = 1  # a third of class 2's examples carry label 1
    noise = knn_label_noise(x, y, 3, neighbours=5)
    assert noise[1] > 0.15 and noise[0] < 0.05


def _attrs(k: int = 6) -> ClassAttributes:
    counts = longtail.long_tailed_counts(100, k, 20.0)
    return ClassAttributes(frequency=frequency(counts), difficulty=np.linspace(0.1, 0.6, k),
                           noise=np.zeros(k), weight=np.full(k, 1 / k))


def test_a2h_has_the_same_number_of_parameters_for_any_number_of_classes():
    sizes = []
    for k in (5, 50):
        attrs = _attrs(k)
        sizes.append(AttributeToHyper(dictionary(attrs, ("frequency", "difficulty")), attrs.frequency,
                                      ("delta", "iota", "omega"), 1.0).num_hyperparameters())
    assert sizes[0] == sizes[1] == 4 * 3
    assert FreePerClass(_attrs(50).frequency, ("delta", "iota"), 1.0).num_hyperparameters() == 100


def test_cap_and_free_start_from_the_logit_adjusted_loss():
    attrs = _attrs()
    counts = attrs.frequency * 1000
    z, y = torch.randn(8, 6), torch.randint(0, 6, (8,))
    expected = losses.logit_adjusted_loss(z, y, counts, 1.0)
    heads = ("delta", "iota", "omega")
    for hyper in (AttributeToHyper(dictionary(attrs, ("frequency",)), attrs.frequency, heads, 1.0),
                  FreePerClass(attrs.frequency, ("delta", "iota", "omega"), 1.0)):
        with torch.no_grad():
            assert losses.parametric_loss(z, y, **hyper()).item() == pytest.approx(expected.item(), rel=1e-5)


def test_dictionary_rejects_unknown_or_unmeasured_attributes():
    with pytest.raises(ValueError, match="unknown class attributes"):
        dictionary(_attrs(), ("colour",))
    with pytest.raises(ValueError, match="not measured"):
        dictionary(ClassAttributes(frequency=np.full(3, 1 / 3)), ("noise",))


def test_worst_objective_is_a_soft_maximum_between_mean_and_max():
    losses_k = torch.tensor([0.1, 0.2, 1.5])
    soft = objective_value(losses_k, "worst", worst_sharpness=5.0).item()
    assert losses_k.mean() < soft <= losses_k.max()
    assert objective_value(losses_k, "weighted", torch.tensor([0.0, 0.0, 1.0])).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="unknown objective"):
        objective_value(losses_k, "median")


def test_free_post_hoc_overfits_a_tiny_validation_split_more_than_cap():
    g = torch.Generator().manual_seed(1)
    k = 20
    val_logits, val_y = torch.randn(60, k, generator=g), torch.arange(k).repeat(3)
    attrs = _attrs(k)
    cfg = BilevelConfig(objective="balanced", hyper_lr=0.1)
    cap = AttributeToHyper(dictionary(attrs, ("frequency",)), attrs.frequency, ("delta", "iota"), -1.0)
    free = FreePerClass(attrs.frequency, ("delta", "iota"), -1.0)
    cap_hist = fit_posthoc(cap, val_logits, val_y, k, cfg, 100)
    free_hist = fit_posthoc(free, val_logits, val_y, k, cfg, 100)
    assert cap_hist[-1] < cap_hist[0] and free_hist[-1] < cap_hist[-1]  # more freedom fits pure noise better


def test_class_difficulty_is_shrunk_soft_error():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    d = class_difficulty(logits, labels, 2, strength=0.0)
    assert d[0] == pytest.approx(1 - torch.softmax(logits[0], 0)[0].item(), abs=1e-6)
    assert d[1] > 0.4


def test_hypergradient_step_moves_the_hyperparameters_towards_a_lower_validation_loss():
    torch.manual_seed(0)
    k = 3
    x = torch.randn(90, 4)
    y = torch.arange(k).repeat(30)
    x[:, :k] += 2 * torch.nn.functional.one_hot(y, k)
    model = build_model("mlp", (4,), k)
    attrs = ClassAttributes(frequency=np.full(k, 1 / k))
    hyper = FreePerClass(attrs.frequency, ("delta", "iota", "omega"), 0.0)
    step = HypergradientStep(model, hyper, x, y, k, BilevelConfig(warmup=0.0, hyper_lr=0.05, refresh_every=0))
    before = hyper.table.detach().clone()
    for i in range(5):
        step(i, 0.5, x, y)
    assert not torch.equal(before, hyper.table.detach())
    assert len(step.history) == 5


def test_adjust_applies_multiplicative_then_additive_terms():
    z = torch.tensor([[1.0, 2.0]])
    out = adjust(z, {"delta": torch.tensor([2.0, 0.5]), "iota": torch.tensor([0.0, 1.0]), "omega": None})
    assert torch.allclose(out, torch.tensor([[2.0, 2.0]]))
    assert per_class_losses(out, torch.tensor([1]), 2)[1] == pytest.approx(np.log(2.0), rel=1e-5)


@pytest.mark.parametrize("variant,family,extra", [
    ("ce", "ce", {}),
    ("posthoc_la", "posthoc_la", {"tau": [0.5, 1.0]}),
    ("ldam_drw", "ldam_drw", {"scale": 5.0}),
    ("cap_worst", "cap", {"objective": "worst", "attributes": ["frequency", "noise", "difficulty"]}),
    ("free_posthoc_bal", "free_posthoc", {}),
    ("cap_posthoc_weighted", "cap_posthoc", {"objective": "weighted", "attributes": ["frequency", "weight"]}),
])
def test_every_family_runs_and_records_the_benchmark_metrics_on_val_and_test(tmp_path, variant, family,
                                                                             extra):
    from methods.cap.run import FAMILIES, METHOD
    from methods.core.api import RunContext

    data_args = lt_gmm.GMMArgs(num_classes=4, dim=3, n_max=40, imbalance=10.0, test_per_class=10,
                               noise_rate=0.1)
    if family in ("cap_posthoc", "free_posthoc"):
        extra = {**extra, "posthoc_steps": 5}
    args = FAMILIES[family].args(steps=12, **extra)
    ctx = RunContext(scale="test", benchmark_id="lt_gmm", benchmark=lt_gmm.BENCHMARK, method=METHOD,
                     variant=variant, family=family, replicate=0, seed=1, data_seed=2, args=args,
                     data_args=data_args, device=torch.device("cpu"), dtype=torch.float32, out_dir=tmp_path)
    ctx.log = lambda message: None
    METHOD.run(ctx)
    recorded = {(r["split"], r["metric"]) for r in ctx.rows}
    for split in ("val", "test"):
        for metric in ("balanced_error", "worst_class_error", "std_class_error", "weighted_error"):
            assert (split, metric) in recorded
    assert all(0.0 <= r["value"] <= 1.0 for r in ctx.rows if r["metric"].endswith("error"))


def test_unknown_objective_is_a_clear_error(tmp_path):
    from methods.cap.run import FAMILIES, METHOD
    from methods.core.api import RunContext

    ctx = RunContext(scale="test", benchmark_id="lt_gmm", benchmark=lt_gmm.BENCHMARK, method=METHOD,
                     variant="cap_x", family="cap_posthoc", replicate=0, seed=1, data_seed=2,
                     args=FAMILIES["cap_posthoc"].args(steps=2, objective="median"),
                     data_args=lt_gmm.GMMArgs(num_classes=3, dim=2, n_max=10, imbalance=2.0,
                                              test_per_class=2),
                     device=torch.device("cpu"), dtype=torch.float32, out_dir=tmp_path)
    ctx.log = lambda message: None
    with pytest.raises(ValueError, match="unknown objective 'median'"):
        METHOD.run(ctx)


def test_post_hoc_variants_reuse_the_ce_base_stage_instead_of_training(tmp_path):
    from methods.cap.run import FAMILIES, METHOD, STAGES
    from methods.core.api import RunContext

    data_args = lt_gmm.GMMArgs(num_classes=3, dim=3, n_max=30, imbalance=5.0, test_per_class=5)
    lines: list[str] = []

    def context(variant, family, args, out, inputs):
        ctx = RunContext(scale="test", benchmark_id="lt_gmm", benchmark=lt_gmm.BENCHMARK, method=METHOD,
                         variant=variant, family=family, replicate=0, seed=3, data_seed=4, args=args,
                         data_args=data_args, device=torch.device("cpu"), dtype=torch.float32, out_dir=out,
                         inputs=inputs)
        ctx.log = lines.append
        return ctx

    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    METHOD.run_stage(context("ce_base", "ce_base", STAGES["ce_base"].args(steps=10), stage_dir, {}))
    ctx = context("cap_posthoc_bal", "cap_posthoc", FAMILIES["cap_posthoc"].args(steps=10, posthoc_steps=3),
                  tmp_path, {"ce_base": stage_dir})
    METHOD.run(ctx)
    assert any("using CE logits from stage ce_base" in line for line in lines)
    assert not any(line.startswith("step ") for line in lines[lines.index(next(
        line for line in lines if "using CE logits" in line)):])  # no training after loading
    assert {r["split"] for r in ctx.rows} >= {"val", "test"}
