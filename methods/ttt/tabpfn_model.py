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


def classifier_proba(path: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     num_classes: int, device: str = "cpu",
                     inference_config: Any | None = None) -> np.ndarray:
    """``TabPFNClassifier(model_path=path)`` fit on the context, class probabilities for 0..C-1."""
    import warnings

    from tabpfn import TabPFNClassifier

    with warnings.catch_warnings():  # tabpfn warns that our inference_config overrides the checkpoint's
        warnings.simplefilter("ignore", UserWarning)
        clf = TabPFNClassifier(model_path=str(require_checkpoint(path)), device=device, random_state=0,
                               n_preprocessing_jobs=1, inference_config=inference_config,
                               ignore_pretraining_limits=True)
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
                        query_fraction: float, splits_per_step: int,
                        generator: torch.Generator) -> list[float]:
    """Test-time training on the prompt's own rows: leave-some-out splits of the context, batched."""
    if not 0 < query_fraction < 1:
        raise ValueError(f"query_fraction must lie in (0, 1), got {query_fraction}")
    n = len(y)
    num_queries = max(1, int(round(query_fraction * n)))
    if n - num_queries < 2:
        raise ValueError(f"a context of {n} rows is too small to fine-tune on with query_fraction "
                         f"{query_fraction}")
    num_classes = int(y.max()) + 1
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(splits_per_step)], dim=1)
        loss = classify_loss(model, xt[perms], yt[perms], n - num_queries, num_classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def ttt_proba(path: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              num_classes: int, steps: int, lr: float, query_fraction: float, splits_per_step: int,
              generator: torch.Generator,
              device: str = "cpu", inference_config: Any | None = None) -> np.ndarray:
    """Fine-tune a copy of the checkpoint on the context, then predict through ``model_path`` as usual."""
    from tabpfn.checkpoint import Checkpoint

    source = require_checkpoint(path)
    model = load_model(source)
    finetune_on_context(model, x_train, y_train, steps, lr, query_fraction, splits_per_step, generator)
    original = Checkpoint(source).load()
    with tempfile.TemporaryDirectory() as tmp:
        tuned = save_checkpoint(model, original["config"], Path(tmp) / source.name,
                                original.get("inference_config"),
                                {k: v for k, v in original.items() if k not in RESERVED_KEYS})
        return classifier_proba(tuned, x_train, y_train, x_test, num_classes, device, inference_config)
