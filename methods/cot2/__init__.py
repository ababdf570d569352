"""CoT2: continuous chain of thought (arXiv 2505.23648) on MNNS, ProntoQA and ProsQA."""

from methods.core.api import Method, Metric
from methods.cot2.run import FAMILIES, STAGES, run, run_stage

METHOD = Method(
    name="cot2",
    paper="arXiv 2505.23648",
    families=FAMILIES,
    run=run,
    benchmarks=("mnns", "prontoqa", "prosqa"),
    stages=STAGES,
    run_stage=run_stage,
    metrics=(
        Metric("token_entropy", False, "mean entropy (nats) of the policy's distribution at CoT step `step`"),
        Metric("answer_mode_share", False, "share of test predictions that are the one most common answer"),
        Metric("majority_answer_share", False, "share of test examples whose gold answer is the most common one"),
        Metric("train_loss", False, "supervised training loss per epoch"),
        Metric("train_reward", True, "GRPO mean rollout reward per step"),
    ),
)
