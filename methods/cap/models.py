"""Classifiers: a small MLP (smoke: linear when ``hidden=0``) and ResNet-32 for CIFAR-LT (paper profile).

ResNet-32 follows Cao et al.'s CIFAR ResNet (arXiv 1906.07413, code ``kaidic/LDAM-DRW``, after He et al.
2016): 3 stages of 5 basic blocks with 16/32/64 channels, parameter-free "option A" shortcuts, global
average pooling; ``normed_head`` gives LDAM's cosine classifier (logits are cosines, scaled by the loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Flatten, then ``depth`` hidden ReLU layers of width ``hidden`` (none when ``hidden == 0``)."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 0, depth: int = 1,
                 normed_head: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth if hidden > 0 else 0):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(NormedLinear(width, num_classes) if normed_head else nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NormedLinear(nn.Module):
    """Cosine classifier: logits are cosines between normalised features and class weights."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-1, 1).renorm_(2, 1, 1e-5)
                                   .mul_(1e5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes if stride != 1 or in_planes != planes else 0
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pad:
            return x
        x = x[:, :, :: self.stride, :: self.stride]  # option A: subsample, zero-pad the new channels
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet32(nn.Module):
    def __init__(self, num_classes: int, normed_head: bool = False, blocks_per_stage: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks_per_stage):
                stages.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.head = NormedLinear(64, num_classes) if normed_head else nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.head(out.mean((2, 3)))


def build_model(kind: str, input_shape: tuple[int, ...], num_classes: int, hidden: int = 0, depth: int = 1,
                normed_head: bool = False) -> nn.Module:
    if kind == "mlp":
        size = 1
        for s in input_shape:
            size *= s
        return MLP(size, num_classes, hidden, depth, normed_head)
    if kind == "resnet32":
        if tuple(input_shape) != (3, 32, 32):
            raise ValueError(f"resnet32 expects (3, 32, 32) images, got {input_shape}")
        return ResNet32(num_classes, normed_head)
    raise ValueError(f"unknown model '{kind}'; known: mlp, resnet32")
