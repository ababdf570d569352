"""What the ServerApp and every ClientApp share: the data, the backbone and the arms to run.

A ``Setup`` is plain data (pickled into Ray's client actors in simulation); ``build_model`` turns it
into the same model on the server and on each client, so both sides agree on parameter names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from benchmarks.federated_vision import FederatedData
from methods.core.seeding import derive_seed
from methods.fedyolo.modules import ModuleSpec, attach
from methods.fedyolo.vit import ViTClassifier, load_hf_vit, load_tiny_vit

ARM_MODES = ("federated", "local", "multitask")


@dataclass
class ArmSpec:
    """One arm of the suite: which module is trained, how, and with what local budget."""

    module: str = "lora"  # full | head | lora | prompt | adapter
    mode: str = "federated"  # federated (FedAvg of the module) | local (no communication) | multitask
    local_epochs: int = 1  # epochs per round (local mode: epochs in total)
    lr: float = 3e-3
    weight_decay: float = 0.0
    lora_rank: int = 1
    lora_alpha: float = 2.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # e.g. + k_proj, o_proj
    prompt_tokens: int = 4
    adapter_dim: int = 2
    # multitask only: an earlier federated arm (same module) whose trained task-1 model the sequence
    # continues from, instead of training task 1 again (the same rounds, so half the sequence is free)
    start_from: str = ""
    # federated only: end the arm once validation accuracy reaches the target (it measures rounds to
    # target, nothing after; its accuracy is then filed under split ``at_target``)
    stop_at_target: bool = False
    # federated and multitask: rounds per task for this arm; 0 = the suite's ``rounds``. A task sequence
    # continued with ``start_from`` trains only its later tasks, so this sets their phase's length
    rounds: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ARM_MODES:
            raise ValueError(f"unknown arm mode '{self.mode}'; known: {', '.join(ARM_MODES)}")
        if self.stop_at_target and self.mode != "federated":
            raise ValueError(f"stop_at_target is for federated arms only (mode is '{self.mode}')")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0 (0 = the suite's rounds), got {self.rounds}")
        if self.rounds and self.mode == "local":
            raise ValueError("rounds is for federated and multitask arms (a local arm never communicates)")
        if self.start_from and self.mode != "multitask":
            raise ValueError(f"start_from is for multitask arms only (mode is '{self.mode}')")
        self.module_spec()

    def module_spec(self) -> ModuleSpec:
        return ModuleSpec(self.module, self.lora_rank, self.lora_alpha, self.prompt_tokens, self.adapter_dim,
                          tuple(self.lora_targets))


@dataclass
class Setup:
    data: FederatedData
    backbone: str  # a TinyViT checkpoint path, or a transformers ViT hub id / local path
    backbone_kind: str  # tiny | hf
    arms: dict[str, ArmSpec]
    seed: int
    batch_size: int = 32
    device: str = "cpu"
    dtype: torch.dtype = torch.float32  # autocast precision of local training and evaluation
    threads: int = 1
    eval_batch_size: int = 512
    _cache: dict = field(default_factory=dict, repr=False)

    def check_arms(self) -> None:
        """Each ``start_from`` names a federated arm with the same module."""
        for arm, spec in self.arms.items():
            if not spec.start_from:
                continue
            source = self.arms.get(spec.start_from)
            if source is None or source.mode != "federated":
                raise ValueError(f"arm '{arm}': start_from '{spec.start_from}' must be a federated arm; "
                                 f"arms: {', '.join(self.arms)}")
            if source.module_spec() != spec.module_spec():
                raise ValueError(f"arm '{arm}': start_from '{spec.start_from}' trains another module "
                                 f"({source.module} vs {spec.module})")

    def arm_order(self) -> list[str]:
        """Arms in their given order, except that arms continuing another arm run after all others."""
        return sorted(self.arms, key=lambda arm: bool(self.arms[arm].start_from))

    def arm_tasks(self, arm: str) -> list[str]:
        """Multitask arms learn every task in sequence; the others learn the first task."""
        tasks = [t.name for t in self.data.tasks]
        return tasks if self.arms[arm].mode == "multitask" else tasks[:1]

    def load_backbone(self) -> ViTClassifier:
        if self.backbone_kind == "tiny":
            return load_tiny_vit(self.backbone)
        if self.backbone_kind == "hf":
            return load_hf_vit(self.backbone)
        raise ValueError(f"unknown backbone kind '{self.backbone_kind}'; known: tiny, hf")

    def build_model(self, arm: str) -> tuple[ViTClassifier, dict[str, list[str]]]:
        """The arm's model (pretrained backbone + one head and module per task) and, per task, the
        names of the parameters trained and communicated. Initial values come from a generator seeded
        by (seed, arm), so the server's copy is reproducible; clients overwrite them from the server."""
        model = self.load_backbone()
        generator = torch.Generator().manual_seed(derive_seed("init", self.seed, arm))
        names = {}
        for task in self.arm_tasks(arm):
            names[task] = attach(model, task, self.data.task(task).num_classes, self.arms[arm].module_spec(),
                                 generator)
        return model.to(torch.device(self.device)), names

    def cached_model(self, arm: str) -> tuple[ViTClassifier, dict[str, list[str]]]:
        """One model per arm per process (a Ray actor trains many clients with it in turn)."""
        if arm not in self._cache:
            self._cache.clear()  # arms run one after another: keep one model in memory
            self._cache[arm] = self.build_model(arm)
        return self._cache[arm]
