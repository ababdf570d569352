"""Variant families of CAP (arXiv 2401.14343) and its baselines, and the one entry point ``run(ctx)``.

Baselines (each tuned: list-valued arguments form a grid, the point with the best validation score on
``tune_metric`` wins): ``ce``, ``la_loss`` (Menon et al.), ``posthoc_la``, ``ldam_drw`` (Cao et al.), ``vs``
(Kini et al.), ``cdt`` (Ye et al.). CAP and its naive counterpart share one code path and differ only
in the hyperparameter model: ``cap`` / ``free`` design the training loss by bilevel optimisation;
``cap_posthoc`` / ``free_posthoc`` fit a post-hoc logit adjustment of a cross-entropy model on validation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from benchmarks.longtail import ClassificationSplits
from methods.cap import losses
from methods.cap.attributes import (
    ClassAttributes,
    class_difficulty,
    dictionary,
    frequency,
    knn_label_noise,
)
from methods.cap.hyper import (
    OBJECTIVE_METRIC,
    OBJECTIVES,
    AttributeToHyper,
    ClassHyperparameters,
    FreePerClass,
)
from methods.cap.models import build_model
from methods.cap.train import (
    BilevelConfig,
    HypergradientStep,
    LossFn,
    OptimConfig,
    adjust,
    fit,
    fit_posthoc,
    predict_logits,
)
from methods.core.api import Family, Method, Metric, RunContext


@dataclass
class TrainArgs:
    model: str = "mlp"  # mlp | resnet32
    hidden: int = 0  # mlp width; 0 is a linear classifier
    depth: int = 1
    steps: int = 300
    batch_size: int = 0  # 0: full batch
    lr: float = 0.01
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    augment: bool = False
    tune_metric: str = "balanced_error"  # validation metric that picks a baseline's grid point


@dataclass
class CEArgs(TrainArgs):
    pass


@dataclass
class LAArgs(TrainArgs):
    tau: list[float] = field(default_factory=lambda: [1.0])  # Menon et al.: tau = 1


@dataclass
class PosthocLAArgs(TrainArgs):
    tau: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])


@dataclass
class LDAMArgs(TrainArgs):
    max_margin: list[float] = field(default_factory=lambda: [0.5])  # Cao et al.: C so that max margin is 0.5
    scale: float = 30.0  # Cao et al.: s = 30 with the cosine head; use ~1-5 with a plain linear head
    normed_head: bool = True
    drw_start: float = 0.8  # Cao et al.: epoch 160 of 200
    beta: float = 0.9999


@dataclass
class VSArgs(TrainArgs):
    gamma: list[float] = field(default_factory=lambda: [0.2])  # Kini et al., CIFAR-10-LT
    tau: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class CDTArgs(TrainArgs):
    gamma: list[float] = field(default_factory=lambda: [0.1])


@dataclass
class BilevelArgs(TrainArgs):
    objective: str = "balanced"  # balanced | std | worst | weighted
    attributes: list[str] = field(default_factory=lambda: ["frequency", "difficulty"])
    heads: list[str] = field(default_factory=lambda: ["delta", "iota", "omega"])
    init_tau: float = 1.0  # start from the logit-adjusted loss
    hyper_lr: float = 0.02
    inner_lr: float = 0.1
    warmup: float = 0.1
    hyper_every: int = 1
    refresh_every: int = 50
    worst_sharpness: float = 5.0
    std_weight: float = 1.0
    surrogate: str = "ce"  # per-class validation loss: ce | soft_error
    noise_neighbours: int = 10


@dataclass
class PosthocArgs(BilevelArgs):
    heads: list[str] = field(default_factory=lambda: ["delta", "iota"])
    init_tau: float = -1.0  # start from post-hoc logit adjustment, z - log pi
    hyper_lr: float = 0.05
    posthoc_steps: int = 300


def optim_config(args: TrainArgs) -> OptimConfig:
    return OptimConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, optimizer=args.optimizer, augment=args.augment)


def grid(args: TrainArgs) -> list[dict[str, float]]:
    """Cross product of the list-valued arguments (the baseline's tuning grid)."""
    names = [f.name for f in fields(args) if isinstance(getattr(args, f.name), list)
             and f.name not in ("attributes", "heads")]
    values = [getattr(args, n) for n in names]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise ValueError(f"argument '{name}' has an empty grid")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


class Task:
    """The data of one run on the device, and helpers every variant uses."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        data: ClassificationSplits = ctx.load_data()
        self.data = data
        dev = ctx.device
        self.x_train, self.y_train = data.x_train.to(dev), data.y_train.to(dev)
        self.x_val, self.y_val = data.x_val.to(dev), data.y_val.to(dev)
        self.x_test = data.x_test.to(dev)
        self.k = data.num_classes
        self.counts = data.train_counts
        self.test_weights = torch.as_tensor(data.test_weights, dtype=torch.float32, device=dev)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        ctx.log(f"train {tuple(data.x_train.shape)} counts {self.counts.tolist()}, val {len(data.y_val)}, "
                f"test {len(data.y_test)}")

    def model(self, args: TrainArgs, normed_head: bool = False) -> torch.nn.Module:
        return build_model(args.model, self.data.input_shape, self.k, args.hidden, args.depth,
                           normed_head).to(self.ctx.device)

    def train(self, args: TrainArgs, loss_fn: LossFn, normed_head: bool = False,
              on_step_factory=None) -> torch.nn.Module:
        model = self.model(args, normed_head)
        hook = on_step_factory(model) if on_step_factory else None
        fit(model, self.x_train, self.y_train, loss_fn, optim_config(args), self.generator, self.ctx.log,
            hook)
        return model

    def score(self, logits: torch.Tensor, split: str) -> dict[str, float]:
        return self.ctx.benchmark.score(logits.argmax(1).cpu(), self.data, split)

    def record(self, val_logits: torch.Tensor, test_logits: torch.Tensor) -> None:
        self.ctx.record_all(self.score(val_logits, "val"), split="val")
        self.ctx.record_all(self.score(test_logits, "test"), split="test")

    def attributes(self, use: list[str], val_logits: torch.Tensor | None, neighbours: int) -> ClassAttributes:
        attrs = ClassAttributes(frequency=frequency(self.counts), weight=self.data.test_weights)
        if "noise" in use:
            attrs.noise = knn_label_noise(self.data.x_train, self.data.y_train, self.k, neighbours)
            self.ctx.log("estimated label noise per class: " + " ".join(f"{v:.2f}" for v in attrs.noise))
        if "difficulty" in use:
            attrs.difficulty = (np.full(self.k, 0.5) if val_logits is None
                                else class_difficulty(val_logits, self.y_val, self.k))
        return attrs


def _tuned(task: Task, args: TrainArgs, train_one) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train one model per grid point; keep the one with the best validation ``tune_metric``."""
    best = None
    for point in grid(args):
        val_logits, test_logits = train_one(point)
        value = task.score(val_logits, "val")[args.tune_metric]
        task.ctx.log(f"grid {point}: val {args.tune_metric} {value:.4f}")
        if best is None or value < best[0]:
            best = (value, val_logits, test_logits, point)
    assert best is not None
    return best[1], best[2], best[3]


def _record_choice(ctx: RunContext, point: dict) -> None:
    for name, value in point.items():
        ctx.record(f"chosen_{name}", value, split="val")


def run_baseline(task: Task, family: str, args: TrainArgs) -> None:
    counts = task.counts

    def train_one(point: dict) -> tuple[torch.Tensor, torch.Tensor]:
        normed = False
        if family == "ce":
            def loss(z, y, _p):
                return losses.cross_entropy(z, y)
        elif family == "la_loss":
            def loss(z, y, _p):
                return losses.logit_adjusted_loss(z, y, counts, point["tau"])
        elif family == "ldam_drw":
            normed = args.normed_head

            def loss(z, y, p):
                weight = losses.drw_weight(counts, p, args.drw_start, args.beta)
                return losses.ldam_loss(z, y, counts, point["max_margin"], args.scale,
                                        None if weight is None else weight.to(z.device))
        elif family == "vs":
            def loss(z, y, _p):
                return losses.vs_loss(z, y, counts, point["gamma"], point["tau"])
        elif family == "cdt":
            def loss(z, y, _p):
                return losses.cdt_loss(z, y, counts, point["gamma"])
        else:
            raise ValueError(f"no baseline family '{family}'")
        model = task.train(args, loss, normed_head=normed)
        return predict_logits(model, task.x_val), predict_logits(model, task.x_test)

    val_logits, test_logits, point = _tuned(task, args, train_one)
    _record_choice(task.ctx, point)
    task.record(val_logits, test_logits)


BASE_FILE = "ce_logits.pt"


def run_stage(ctx: RunContext) -> None:
    """The shared ``ce_base`` stage: one cross-entropy model per seed whose validation and test logits
    every post-hoc variant with ``after: <stage>`` adjusts (no retraining per variant at paper scale)."""
    task = Task(ctx)
    model = task.train(ctx.args, lambda z, y, _p: losses.cross_entropy(z, y))
    torch.save({"val": predict_logits(model, task.x_val).cpu(),
                "test": predict_logits(model, task.x_test).cpu(),
                "model": model.state_dict()}, ctx.out_dir / BASE_FILE)


def base_logits(task: Task, args: TrainArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation and test logits of a CE model: from a ``ce_base`` stage when wired, else trained here."""
    inputs = task.ctx.inputs
    if inputs:
        saved = torch.load(next(iter(inputs.values())) / BASE_FILE, map_location=task.ctx.device)
        if saved["val"].shape[0] != task.y_val.shape[0]:
            raise ValueError("the ce_base stage was trained on other data (validation sizes differ)")
        task.ctx.log(f"using CE logits from stage {next(iter(inputs))}")
        return saved["val"].to(task.ctx.device), saved["test"].to(task.ctx.device)
    model = task.train(args, lambda z, y, _p: losses.cross_entropy(z, y))
    return predict_logits(model, task.x_val), predict_logits(model, task.x_test)


def run_posthoc_la(task: Task, args: PosthocLAArgs) -> None:
    val_base, test_base = base_logits(task, args)
    val_logits, test_logits, point = _tuned(
        task, args, lambda p: (losses.posthoc_adjusted_logits(val_base, task.counts, p["tau"]),
                               losses.posthoc_adjusted_logits(test_base, task.counts, p["tau"])))
    _record_choice(task.ctx, point)
    task.record(val_logits, test_logits)


def _check_objective(args: BilevelArgs) -> None:
    if args.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective '{args.objective}'; known: {', '.join(OBJECTIVES)}")


def _hyper_model(task: Task, family: str, args: BilevelArgs, attrs: ClassAttributes) -> ClassHyperparameters:
    heads = tuple(args.heads)
    if family.startswith("cap"):
        return AttributeToHyper(dictionary(attrs, tuple(args.attributes)), attrs.frequency, heads,
                                args.init_tau).to(task.ctx.device)
    return FreePerClass(attrs.frequency, heads, args.init_tau).to(task.ctx.device)


def _bilevel_config(args: BilevelArgs) -> BilevelConfig:
    return BilevelConfig(objective=args.objective, hyper_lr=args.hyper_lr, inner_lr=args.inner_lr,
                         warmup=args.warmup, every=args.hyper_every, refresh_every=args.refresh_every,
                         worst_sharpness=args.worst_sharpness, std_weight=args.std_weight,
                         surrogate=args.surrogate)


def _log_terms(task: Task, hyper: ClassHyperparameters) -> None:
    with torch.no_grad():
        for name, value in hyper().items():
            if value is not None:
                task.ctx.log(f"{name}: " + " ".join(f"{v:.2f}" for v in value.tolist()))
    task.ctx.record("num_hyperparameters", hyper.num_hyperparameters(), split="val")


def run_bilevel(task: Task, family: str, args: BilevelArgs) -> None:
    """CAP (or free per-class) loss design: train the model and the loss parameters together."""
    _check_objective(args)
    attrs = task.attributes(args.attributes, None, args.noise_neighbours)
    hyper = _hyper_model(task, family, args, attrs)
    state: dict[str, torch.nn.Module] = {}

    def refresh() -> None:  # re-measure validation difficulty with the current model
        if "difficulty" in args.attributes and family == "cap":
            val_logits = predict_logits(state["model"], task.x_val)
            attrs.difficulty = class_difficulty(val_logits, task.y_val, task.k)
            hyper.set_features(dictionary(attrs, tuple(args.attributes)).to(task.ctx.device))

    def factory(model: torch.nn.Module) -> HypergradientStep:
        state["model"] = model
        return HypergradientStep(model, hyper, task.x_val, task.y_val, task.k, _bilevel_config(args),
                                 task.test_weights, refresh)

    def loss(z, y, _p):
        with torch.no_grad():
            terms = hyper()
        return losses.parametric_loss(z, y, **terms)

    model = task.train(args, loss, on_step_factory=factory)
    _log_terms(task, hyper)
    task.record(predict_logits(model, task.x_val), predict_logits(model, task.x_test))


def run_posthoc(task: Task, family: str, args: PosthocArgs) -> None:
    """CAP (or free) post-hoc logit adjustment of a cross-entropy model, fitted on validation."""
    _check_objective(args)
    val_base, test_base = base_logits(task, args)
    # difficulty from logit-adjusted scores, so that it is not class frequency in disguise
    attrs = task.attributes(args.attributes, losses.posthoc_adjusted_logits(val_base, task.counts, 1.0),
                            args.noise_neighbours)
    hyper = _hyper_model(task, family, args, attrs)
    history = fit_posthoc(hyper, val_base, task.y_val, task.k, _bilevel_config(args), args.posthoc_steps,
                          task.test_weights)
    task.ctx.log(f"post-hoc objective {history[0]:.4f} -> {history[-1]:.4f}")
    _log_terms(task, hyper)
    with torch.no_grad():
        terms = hyper()
        task.record(adjust(val_base, terms), adjust(test_base, terms))


def run(ctx: RunContext) -> None:
    if ctx.args.tune_metric not in OBJECTIVE_METRIC.values():
        raise ValueError(f"tune_metric '{ctx.args.tune_metric}' is not a validation metric; "
                         f"known: {', '.join(OBJECTIVE_METRIC.values())}")
    task = Task(ctx)
    if ctx.family in ("ce", "la_loss", "ldam_drw", "vs", "cdt"):
        run_baseline(task, ctx.family, ctx.args)
    elif ctx.family == "posthoc_la":
        run_posthoc_la(task, ctx.args)
    elif ctx.family in ("cap", "free"):
        run_bilevel(task, ctx.family, ctx.args)
    elif ctx.family in ("cap_posthoc", "free_posthoc"):
        run_posthoc(task, ctx.family, ctx.args)
    else:
        raise ValueError(f"unknown family '{ctx.family}'")


FAMILIES = {
    "ce": Family("ce", "cross-entropy (ERM)", CEArgs),
    "la_loss": Family("la_loss", "logit-adjusted loss, Menon et al. arXiv 2007.07314", LAArgs),
    "posthoc_la": Family("posthoc_la", "post-hoc logit adjustment of a CE model, tau tuned on val",
                         PosthocLAArgs),
    "ldam_drw": Family("ldam_drw", "LDAM margins with deferred re-weighting, Cao et al. arXiv 1906.07413",
                       LDAMArgs),
    "vs": Family("vs", "vector-scaling loss, Kini et al. arXiv 2103.01550", VSArgs),
    "cdt": Family("cdt", "class-dependent temperatures, Ye et al. arXiv 2001.01385", CDTArgs),
    "cap": Family("cap", "CAP: attribute-to-hyperparameter model, loss designed by bilevel optimisation",
                  BilevelArgs),
    "free": Family("free", "naive: free per-class loss hyperparameters, same bilevel optimisation",
                   BilevelArgs),
    "cap_posthoc": Family("cap_posthoc", "CAP for post-hoc logit adjustment (fitted on val)", PosthocArgs),
    "free_posthoc": Family("free_posthoc", "naive: free per-class post-hoc adjustment (fitted on val)",
                           PosthocArgs),
}

STAGES = {"ce_base": Family("ce_base", "one cross-entropy model per seed shared by the post-hoc variants",
                            CEArgs)}

METHOD = Method(
    name="cap",
    paper="arXiv 2401.14343",
    families=FAMILIES,
    run=run,
    stages=STAGES,
    run_stage=run_stage,
    benchmarks=("lt_gmm", "lt_digits", "lt_mnist1d", "cifar_lt"),
    metrics=(Metric("num_hyperparameters", False, "size of the fitted hyperparameter model"),
             Metric("chosen_tau", False, "grid point picked on validation"),
             Metric("chosen_gamma", False, "grid point picked on validation"),
             Metric("chosen_max_margin", False, "grid point picked on validation")),
)
