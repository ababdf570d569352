"""TabPFN through the real ``tabpfn`` package: checkpoints in its format, its loader, its classifier.

Every prediction goes through ``TabPFNClassifier(model_path=...)``; a path that does not exist is an error
here, before ``tabpfn`` could try to download weights from the hub. The smoke model is a small
``tabpfn_v2`` architecture (``tabpfn.architectures.tabpfn_v2``) saved as tabpfn saves checkpoints
(``state_dict``, ``config``, ``architecture_name``, ``inference_config``), so the paper's TabPFN v2 weights
and ours load through the same code.

Test-time training (arXiv 2503.11842, Section 6): the model is fine-tuned on the prompt's own labelled
rows, leave-some-out: each step splits the context at random into a smaller context and held-out
queries (several splits per step, batched) and minimises the queries' cross-entropy; the fine-tuned
weights are saved as a checkpoint and loaded through the same ``model_path`` code to predict the test rows.
How many steps and which learning rate are chosen per prompt, on the prompt's own rows only
(``select_ttt_setting``): a held-out share of the context scores every (learning rate, steps) setting of
a small grid, zero steps (no TTT) included; the test rows are never seen.

The classifier runs in float32 (``inference_precision``): tabpfn's default on CPU is bfloat16 autocast,
which moved our small model's probabilities by up to 0.09 against the float32 forward that TTT trains.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from methods.ttt.prior import sample_tasks

RESERVED_KEYS = ("state_dict", "config", "architecture_name", "inference_config")
CHECKPOINT_NAME = "tabpfn-v2-octobench-classifier.ckpt"  # "v2" naming: tabpfn infers the version from it


def identity_inference_config() -> Any:
    """One estimator on the raw features (the model standardises internally), no ensembling shifts.

    TTT fine-tunes on exactly these inputs, so training and prediction see the same features.
    """
    from tabpfn.inference_config import InferenceConfig
    from tabpfn.preprocessing import PreprocessorConfig

    base = InferenceConfig.get_default("multiclass", "v2")
    return dataclasses.replace(
        base, PREPROCESS_TRANSFORMS=[PreprocessorConfig("none", categorical_name="numeric",
                                                        append_original=False, global_transformer_name=None)],
        FEATURE_SHIFT_METHOD=None, CLASS_SHIFT_METHOD=None, FINGERPRINT_FEATURE=False,
        OUTLIER_REMOVAL_STD=None, SOFTMAX_TEMPERATURE=1.0, N_ESTIMATORS=1)


def build_small_model(emsize: int, nlayers: int, nhead: int, max_num_classes: int, init_std: float,
                      seed: int) -> tuple[torch.nn.Module, Any]:
    """A fresh TabPFN v2 architecture; residual output projections get small random (not zero) weights.

    tabpfn zero-initialises them, which leaves a long loss plateau at the start of pretraining.
    """
    from tabpfn.architectures.tabpfn_v2 import TabPFNV2Config, get_architecture

    config = TabPFNV2Config(emsize=emsize, nlayers=nlayers, nhead=nhead, features_per_group=2,
                            max_num_classes=max_num_classes, seed=0)
    torch.manual_seed(seed)
    model = get_architecture(config)
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if init_std > 0 and (name.endswith("out_projection.weight") or name.endswith("mlp.2.weight")):
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator) * init_std)
    return model, config


def save_checkpoint(model: torch.nn.Module, config: Any, path: Path, inference_config: Any | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` in tabpfn's checkpoint format (what ``tabpfn.model_loading`` reads)."""
    checkpoint = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                  "config": config if isinstance(config, dict) else dataclasses.asdict(config),
                  "architecture_name": "tabpfn_v2", **(extra or {})}
    if inference_config is not None:
        checkpoint["inference_config"] = inference_config if isinstance(inference_config, dict) \
            else dataclasses.asdict(inference_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def require_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TabPFN checkpoint {path} does not exist; octobench never lets tabpfn "
                                f"download weights: put the file there (paper profile) or run the "
                                f"pretraining stage")
    return path


def load_model(path: str | Path) -> torch.nn.Module:
    """The architecture with the checkpoint's weights, via tabpfn's own loader (a fresh copy each call)."""
    from tabpfn.model_loading import load_model as tabpfn_load_model

    model, _, _, _ = tabpfn_load_model(path=require_checkpoint(path).resolve(), estimator_type="classifier")
    return copy.deepcopy(model)


PRECISIONS = {"float32": torch.float32, "float64": torch.float64, "auto": "auto", "autocast": "autocast"}


def inference_precision(name: str) -> Any:
    """tabpfn's ``inference_precision`` from a config string: float32 / float64 / auto / autocast."""
    if name not in PRECISIONS:
        raise ValueError(f"inference_precision '{name}' unknown; use one of {', '.join(PRECISIONS)}")
    return PRECISIONS[name]


def classifier_proba(path: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     num_classes: int, device: str = "cpu", inference_config: Any | None = None,
                     precision: str = "float32") -> np.ndarray:
    """``TabPFNClassifier(model_path=path)`` fit on the context, class probabilities for 0..C-1."""
    import warnings

    from tabpfn import TabPFNClassifier

    with warnings.catch_warnings():  # tabpfn warns that our inference_config overrides the checkpoint's
        warnings.simplefilter("ignore", UserWarning)
        clf = TabPFNClassifier(model_path=str(require_checkpoint(path)), device=device, random_state=0,
                               n_preprocessing_jobs=1, inference_config=inference_config,
                               ignore_pretraining_limits=True, inference_precision=inference_precision(precision))
        clf.fit(x_train, y_train)
        seen = clf.predict_proba(x_test)
    full = np.zeros((len(x_test), num_classes))
    full[:, np.asarray(clf.classes_, dtype=int)] = seen
    return full


def classify_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_train: int,
                  num_classes: int) -> torch.Tensor:
    """Cross-entropy of the rows after ``num_train``, the first ones the context: x (R, B, F), y (R, B)."""
    logits = model(x, y[:num_train])[..., :num_classes]
    return F.cross_entropy(logits.reshape(-1, num_classes), y[num_train:].reshape(-1).long())


def pretrain_on_prior(model: torch.nn.Module, steps: int, batch: int, rows: int, max_features: int,
                      max_classes: int, lr: float, generator: torch.Generator,
                      log: Callable[[str], None] = print) -> list[float]:
    """Prior-fitted pretraining: each step a batch of fresh prior tasks, loss on a random query split."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses, running = [], None
    for step in range(1, steps + 1):
        features = int(torch.randint(2, max_features + 1, (1,), generator=generator))
        classes = int(torch.randint(2, max_classes + 1, (1,), generator=generator))
        num_train = int(torch.randint(rows // 4, rows - rows // 8, (1,), generator=generator))
        tasks = sample_tasks(generator, batch, rows, features, classes)
        loss = classify_loss(model, tasks.x, tasks.y, num_train, classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % max(1, steps // 10) == 0 or step == steps:
            losses.append(running)
            log(f"pretrain step {step}/{steps}: loss {running:.3f}")
    model.eval()
    return losses


def finetune_on_context(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float,
                        query_fraction: float, splits_per_step: int, generator: torch.Generator,
                        num_classes: int | None = None,
                        on_step: Callable[[int], None] | None = None) -> list[float]:
    """Test-time training on the prompt's own rows: leave-some-out splits of the context, batched.

    ``on_step(s)`` is called after step s (and with s = 0 before the first), e.g. to score held-out rows.
    """
    if not 0 < query_fraction < 1:
        raise ValueError(f"query_fraction must lie in (0, 1), got {query_fraction}")
    n = len(y)
    num_queries = max(1, int(round(query_fraction * n)))
    if n - num_queries < 2:
        raise ValueError(f"a context of {n} rows is too small to fine-tune on with query_fraction "
                         f"{query_fraction}")
    num_classes = num_classes or int(y.max()) + 1
    device = next(model.parameters()).device
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.float32, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    if on_step is not None:
        on_step(0)
    for step in range(1, steps + 1):
        model.train()
        perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(splits_per_step)], dim=1)
        loss = classify_loss(model, xt[perms.to(device)], yt[perms.to(device)], n - num_queries, num_classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        model.eval()
        if on_step is not None:
            on_step(step)
    model.eval()
    return losses


def can_finetune(n: int, query_fraction: float) -> bool:
    return n - max(1, int(round(query_fraction * n))) >= 2


@torch.no_grad()
def forward_proba(model: torch.nn.Module, x_context: np.ndarray, y_context: np.ndarray, x_query: np.ndarray,
                  num_classes: int) -> np.ndarray:
    """The model's own float32 forward (what the classifier computes with our inference config)."""
    device = next(model.parameters()).device
    x = torch.as_tensor(np.concatenate([x_context, x_query]), dtype=torch.float32, device=device)[:, None]
    y = torch.as_tensor(y_context, dtype=torch.float32, device=device)[:, None]
    model.eval()
    logits = model(x, y)[:, 0, :num_classes]
    return torch.softmax(logits.float(), -1).cpu().numpy()


@dataclasses.dataclass
class TTTSetting:
    lr: float
    steps: int
    val_loss: float


def stratified_holdout(y: np.ndarray, val_fraction: float,
                       generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows) of a context: a random, class-stratified ``val_fraction`` held out."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n = len(y)
    num_val = max(1, int(round(val_fraction * n)))
    order = torch.randperm(n, generator=generator).numpy()
    rank = np.empty(n)  # stratified hold-out: interleave each class's rows, take the last num_val
    for c in np.unique(y):
        members = order[y[order] == c]
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    held = np.argsort(rank, kind="stable")
    return np.sort(held[: n - num_val]), np.sort(held[n - num_val:])


def select_ttt_setting(path: str | Path, x: np.ndarray, y: np.ndarray, num_classes: int, lr_grid: list[float],
                       step_grid: list[int], query_fraction: float, splits_per_step: int, val_fraction: float,
                       generator: torch.Generator, device: str = "cpu") -> TTTSetting:
    """Steps and learning rate for TTT chosen on the context alone (leave-some-out model selection).

    ``val_fraction`` of the context's rows (a random, class-stratified draw) are held out; for each
    learning rate a copy of the model is fine-tuned on the remaining rows exactly as TTT fine-tunes on
    the whole context, and after every step count in ``step_grid`` it predicts the held-out rows with the
    remaining rows as its context. The setting with the lowest held-out log-loss wins; 0 steps (the
    model without TTT) is always a candidate, and ties go to fewer steps.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n = len(y)
    fit_idx, val_idx = stratified_holdout(y, val_fraction, generator)
    num_val = len(val_idx)
    x_fit, y_fit, x_val, y_val = x[fit_idx], y[fit_idx], x[val_idx], y[val_idx]
    checkpoints = sorted(set(step_grid) | {0})

    def held_out_loss(model: torch.nn.Module) -> float:
        proba = forward_proba(model, x_fit, y_fit, x_val, num_classes)
        return float(-np.log(np.clip(proba[np.arange(len(y_val)), y_val], 1e-7, 1.0)).mean())

    base = load_model(path).to(device)
    best = TTTSetting(lr=0.0, steps=0, val_loss=held_out_loss(base))
    if not can_finetune(n - num_val, query_fraction) or max(checkpoints) == 0:
        return best
    for lr in lr_grid:
        model = copy.deepcopy(base)

        def score(step: int, model: torch.nn.Module = model, lr: float = lr) -> None:
            nonlocal best
            if step in checkpoints and step > 0:
                loss = held_out_loss(model)
                if loss < best.val_loss - 1e-9 or (abs(loss - best.val_loss) <= 1e-9 and step < best.steps):
                    best = TTTSetting(lr=lr, steps=step, val_loss=loss)

        finetune_on_context(model, x_fit, y_fit, max(checkpoints), lr, query_fraction, splits_per_step,
                            generator, num_classes, on_step=score)
    return best


def select_ttt_on_tasks(path: str | Path, tasks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                        lr_grid: list[float], step_grid: list[int], query_fraction: float, splits_per_step: int,
                        generator: torch.Generator, device: str = "cpu",
                        num_classes_per_task: list[int] | None = None) -> TTTSetting:
    """One TTT setting for a context size, chosen on held-out rows of several tasks (never test rows).

    Each task is (context x, context y, held-out x, held-out y): held-out *generated* tasks
    (``selection: generated``) or the held-out share of every benchmark table's context
    (``selection: pooled``). Every (lr, steps) setting, 0 steps included, is scored by the held-out
    log-loss averaged over the tasks; ties go to fewer steps. ``num_classes_per_task`` defaults to the
    largest label seen + 1.
    """
    checkpoints = sorted(set(step_grid) | {0})
    base = load_model(path).to(device)
    totals: dict[tuple[float, int], float] = {}
    for i, (x, y, x_val, y_val) in enumerate(tasks):
        num_classes = (num_classes_per_task[i] if num_classes_per_task is not None
                       else int(max(y.max(), y_val.max())) + 1)

        def held_out_loss(model: torch.nn.Module, x=x, y=y, x_val=x_val, y_val=y_val, c=num_classes) -> float:
            proba = forward_proba(model, x, y, x_val, c)
            return float(-np.log(np.clip(proba[np.arange(len(y_val)), y_val], 1e-7, 1.0)).mean())

        zero = held_out_loss(base)
        for lr in lr_grid:
            totals[(0.0, 0)] = totals.get((0.0, 0), 0.0) + zero / len(lr_grid)
            if not can_finetune(len(y), query_fraction):
                continue
            model = copy.deepcopy(base)

            def score(step: int, model: torch.nn.Module = model, lr: float = lr) -> None:
                if step in checkpoints and step > 0:
                    totals[(lr, step)] = totals.get((lr, step), 0.0) + held_out_loss(model)

            finetune_on_context(model, x, y, max(checkpoints), lr, query_fraction, splits_per_step, generator,
                                num_classes, on_step=score)
    complete = {k: v / len(tasks) for k, v in totals.items()}
    lr, steps = min(complete, key=lambda k: (round(complete[k], 9), k[1]))
    return TTTSetting(lr=lr, steps=steps, val_loss=complete[(lr, steps)])


def ttt_proba(path: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              num_classes: int, steps: int, lr: float, query_fraction: float, splits_per_step: int,
              generator: torch.Generator, device: str = "cpu", inference_config: Any | None = None,
              precision: str = "float32") -> np.ndarray:
    """Fine-tune a copy of the checkpoint on the context, then predict through ``model_path`` as usual.

    ``steps = 0`` (or a context too small to split) is the model without TTT.
    """
    from tabpfn.checkpoint import Checkpoint

    source = require_checkpoint(path)
    if steps <= 0 or not can_finetune(len(y_train), query_fraction):
        return classifier_proba(source, x_train, y_train, x_test, num_classes, device, inference_config, precision)
    model = load_model(source).to(device)
    finetune_on_context(model, x_train, y_train, steps, lr, query_fraction, splits_per_step, generator,
                        num_classes)
    original = Checkpoint(source).load()
    with tempfile.TemporaryDirectory() as tmp:
        tuned = save_checkpoint(model, original["config"], Path(tmp) / source.name,
                                original.get("inference_config"),
                                {k: v for k, v in original.items() if k not in RESERVED_KEYS})
        return classifier_proba(tuned, x_train, y_train, x_test, num_classes, device, inference_config,
                                precision)
