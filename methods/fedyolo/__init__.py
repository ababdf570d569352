"""FedYolo (arXiv 2307.04905): federated learning with a pretrained transformer and small modules,
on Flower (a ClientApp and a ServerApp run in Flower's simulation runtime)."""

from methods.fedyolo.run import METHOD

__all__ = ["METHOD"]
