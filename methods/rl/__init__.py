"""The shared policy-optimisation engine (GRPO family) used by BREAD, TLDR and CoT2.

Interface (stable):

- ``grpo.group_advantages(rewards, group_size, scale="group") -> (advantages, zero_std)``: rows grouped
  consecutively, ``(r - mean) / (std + 1e-4)`` with Bessel std, as TRL.
- ``grpo.policy_loss(logps, old_logps, advantages, mask, LossConfig, ref_logps=None) -> (loss, stats)``:
  clipped ratio (``epsilon_low/high``), optional k3 KL (``beta``), aggregation ``loss_type`` in
  grpo | bnpo | dr_grpo | dapo. Works on any precomputed per-token log-probs (B, T) — continuous-token
  policies (CoT2) pass their own. Equal to TRL 1.16 ``GRPOTrainer._compute_loss`` (tested).
- ``grpo.token_logps(logits_fn, tokens) -> (B, L-1)``, ``grpo.sft_loss``, ``grpo.zero_variance_fraction``.
- ``generation.Generation``: right-padded rows prompt+completion, ``prompt_lengths``, ``completion_lengths``,
  ``completion_mask()`` aligned with ``tokens[:, 1:]``. Backends ``TorchSampler`` (default, CPU),
  ``HFGenerateSampler`` (transformers generate), ``VLLMSampler`` (lazy vllm); ``build_sampler(name, ...)``.
- ``learner.RewardFn``: plain callable ``(Generation, problem_ids) -> rewards (B,)``.
- ``learner.rollout(sampler, prompts, problem_ids, reward_fn, group_size, max_new_tokens, temperature,
  generator) -> (gen, rewards, ids)``; ``learner.GRPOLearner(model, GRPOConfig).update(gen, rewards)``
  -> stats (reward, zero_variance_fraction, loss, clip_fraction, kl).
"""

from methods.rl.generation import (
    Generation,
    HFGenerateSampler,
    Sampler,
    TorchSampler,
    VLLMSampler,
    build_sampler,
)
from methods.rl.grpo import (
    LossConfig,
    group_advantages,
    policy_loss,
    sft_loss,
    token_logps,
    zero_variance_fraction,
)
from methods.rl.learner import GRPOConfig, GRPOLearner, RewardFn, as_logits_fn, rollout

__all__ = [
    "GRPOConfig", "GRPOLearner", "Generation", "HFGenerateSampler", "LossConfig", "RewardFn", "Sampler",
    "TorchSampler", "VLLMSampler", "as_logits_fn", "build_sampler", "group_advantages", "policy_loss",
    "rollout", "sft_loss", "token_logps", "zero_variance_fraction",
]
