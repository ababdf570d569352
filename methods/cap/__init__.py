"""CAP — class-attribute priors (arXiv 2401.14343) and the long-tail baselines it is compared with.

Modules: ``losses`` (CE, LA, post-hoc LA, LDAM-DRW, VS, CDT and their parametric family), ``attributes``
(class attributes and their dictionary), ``hyper`` (the attribute-to-hyperparameter model, the free
per-class baseline, validation objectives), ``train`` (training and bilevel hypergradient steps),
``models`` (MLP, ResNet-32), ``run`` (variant families and the entry point).
"""

from methods.cap.run import METHOD

__all__ = ["METHOD"]
