"""The shared RL engine (methods/rl): TRL parity of the GRPO loss, advantages, and the samplers."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from methods.nn import LMConfig, TinyLM
from methods.rl import (
    GRPOConfig,
    GRPOLearner,
    LossConfig,
    TorchSampler,
    build_sampler,
    group_advantages,
    policy_loss,
    rollout,
    token_logps,
    zero_variance_fraction,
)

transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")


def _tiny_llama(vocab: int = 16) -> torch.nn.Module:
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                   max_position_embeddings=64,
                                   pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).float()


def _word_tokenizer(vocab: int = 16):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                                eos_token="</s>")


def _trl_trainer(tmp_path, model, loss_type: str, beta: float, eps_high: float | None):
    from datasets import Dataset

    args = trl.GRPOConfig(output_dir=str(tmp_path), loss_type=loss_type, beta=0.0, epsilon=0.2,
                          epsilon_high=eps_high, max_completion_length=6, num_generations=4,
                          per_device_train_batch_size=4, report_to=[], use_cpu=True, logging_steps=1,
                          bf16=False)
    data = Dataset.from_dict({"prompt": ["w3 w4"] * 4})
    trainer = trl.GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                              args=args, train_dataset=data, processing_class=_word_tokenizer())
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; one micro-batch here
    trainer.beta = beta  # set after init: beta > 0 at init would load a reference model from the hub
    return trainer


@pytest.mark.parametrize("loss_type,beta,eps_high", [("grpo", 0.0, None), ("dr_grpo", 0.0, None),
                                                     ("dapo", 0.04, 0.28), ("bnpo", 0.04, None)])
def test_policy_loss_and_gradients_equal_trl_grpo_trainer(tmp_path, loss_type, beta, eps_high):
    model = _tiny_llama()
    trainer = _trl_trainer(tmp_path, model, loss_type, beta, eps_high)
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, 16, (4, 3), generator=gen)
    completion = torch.randint(3, 16, (4, 6), generator=gen)
    completion_mask = torch.ones(4, 6, dtype=torch.long)
    completion_mask[0, 4:] = 0
    completion_mask[2, 2:] = 0
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    advantages, _ = group_advantages(rewards, 4)
    old = torch.randn(4, 6, generator=gen) * 0.1 - 2.5
    ref = torch.randn(4, 6, generator=gen) * 0.1 - 2.5
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": completion,
              "completion_mask": completion_mask, "advantages": advantages, "old_per_token_logps": old,
              "ref_per_token_logps": ref, "num_items_in_batch": completion_mask.sum()}
    trainer.model.train()
    trl_loss = trainer._compute_loss(trainer.model, inputs)
    trl_loss.backward()
    trl_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    tokens = torch.cat([prompt, completion], 1)
    logps = token_logps(lambda t: model(input_ids=t).logits, tokens)[:, prompt.shape[1] - 1:]
    cfg = LossConfig(loss_type=loss_type, epsilon_low=0.2, epsilon_high=eps_high, beta=beta,
                     max_completion_length=6)
    ours, _ = policy_loss(logps, old, advantages, completion_mask, cfg, ref_logps=ref)
    ours.backward()
    assert torch.allclose(ours, trl_loss.detach(), atol=1e-6, rtol=1e-5)
    for ours_grad, trl_grad in zip([p.grad for p in model.parameters()], trl_grads, strict=True):
        assert torch.allclose(ours_grad, trl_grad, atol=1e-6, rtol=1e-4)


def test_group_advantages_are_normalised_within_groups_and_flag_zero_variance():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv, zero = group_advantages(rewards, 4)
    expected = (rewards[:4] - 0.25) / (rewards[:4].std() + 1e-4)
    assert torch.allclose(adv[:4], expected)
    assert torch.all(adv[4:] == 0) and zero.tolist() == [False] * 4 + [True] * 4
    assert zero_variance_fraction(rewards, 4) == 0.5
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(rewards[:7], 4)


def test_torch_sampler_respects_prompt_lengths_budgets_and_eos():
    torch.manual_seed(0)
    model = TinyLM(LMConfig(vocab_size=8, d_model=16, n_layers=1))
    sampler = TorchSampler(model, pad_id=0, eos_id=7)
    prompts = [torch.tensor([1, 2, 3]), torch.tensor([4]), torch.tensor([5, 6])]
    gen = sampler.sample(prompts, torch.tensor([4, 2, 0]), generator=torch.Generator().manual_seed(0))
    assert gen.prompt_lengths.tolist() == [3, 1, 2]
    assert torch.all(gen.completion_lengths <= torch.tensor([4, 2, 0]))
    for i, p in enumerate(prompts):
        assert gen.tokens[i, : p.numel()].tolist() == p.tolist()
        comp = gen.completions(4)[i, : gen.completion_lengths[i]]
        assert (comp[:-1] != 7).all()  # generation stops at the first EOS
    mask = gen.completion_mask()
    assert mask.sum(1).tolist() == gen.completion_lengths.float().tolist()
    again = sampler.sample(prompts, torch.tensor([4, 2, 0]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.tokens, gen.tokens)


def test_hf_generate_sampler_matches_layout_of_torch_sampler():
    from methods.rl import HFGenerateSampler

    model = _tiny_llama()
    sampler = HFGenerateSampler(model, pad_id=0, eos_id=2)
    prompts = [torch.tensor([1, 5, 6]), torch.tensor([1, 7])]
    state = torch.random.get_rng_state()
    gen = sampler.sample(prompts, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    assert gen.tokens[1, :2].tolist() == [1, 7] and gen.prompt_lengths.tolist() == [3, 2]
    assert torch.all(gen.completion_lengths <= 3) and torch.all(gen.completion_lengths >= 1)


def test_grpo_learner_raises_reward_on_a_one_token_bandit():
    """A 1-token task (emit token 3): a few GRPO steps raise the success rate from chance."""
    torch.manual_seed(0)
    model = TinyLM(LMConfig(vocab_size=6, d_model=16, n_layers=1))
    sampler = TorchSampler(model, pad_id=0)
    learner = GRPOLearner(model, GRPOConfig(group_size=8, lr=3e-2, loss_type="dapo"))
    prompts = [torch.tensor([1, 2])] * 4
    ids = torch.arange(4)
    gen = torch.Generator().manual_seed(0)

    def reward(g, _ids):
        return (g.completions(1)[:, 0] == 3).float()

    first = None
    for _ in range(15):
        g, r, _ = rollout(sampler, prompts, ids, reward, 8, 1, 1.0, gen)
        first = r.mean().item() if first is None else first
        stats = learner.update(g, r)
    assert first < 0.5 and stats["reward"] > 0.9


class _FakeVLLM:
    """Stands in for the ``vllm`` module: records the requests, answers with fixed completions (no GPU)."""

    def __init__(self, completions: list[list[int]]) -> None:
        self.completions, self.requests = completions, []
        fake = self

        class SamplingParams:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class LLM:
            def __init__(self, model: str, **kwargs):
                self.model, self.kwargs = model, kwargs

            def generate(self, prompts, params, use_tqdm=True):
                fake.requests.append((prompts, [p.kwargs for p in params]))
                return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=c)]) for c in fake.completions]

        self.SamplingParams, self.LLM = SamplingParams, LLM


def test_vllm_sampler_sends_per_row_budgets_and_relays_completions_right_padded(monkeypatch):
    """The adapter's own logic (requests, seeds, layout); vLLM itself runs only on a GPU box."""
    fake = _FakeVLLM([[7, 8, 2], [9]])
    monkeypatch.setitem(sys.modules, "vllm", fake)
    sampler = build_sampler("vllm", model_path="/models/tiny", pad_id=0, eos_id=2, gpu_memory_utilization=0.3)
    assert sampler.llm.model == "/models/tiny" and sampler.llm.kwargs == {"gpu_memory_utilization": 0.3}
    prompts = [torch.tensor([5, 6]), torch.tensor([4, 5, 6])]
    gen = sampler.sample(prompts, torch.tensor([3, 1]), temperature=0.7, generator=torch.Generator().manual_seed(0))
    sent, params = fake.requests[0]
    assert sent == [{"prompt_token_ids": [5, 6]}, {"prompt_token_ids": [4, 5, 6]}]
    assert [p["max_tokens"] for p in params] == [3, 1]
    assert all(p["temperature"] == 0.7 and p["stop_token_ids"] == [2] for p in params)
    assert params[0]["seed"] != params[1]["seed"]  # rows of a group must not share a random stream
    assert gen.tokens.tolist() == [[5, 6, 7, 8, 2], [4, 5, 6, 9, 0]]
    assert gen.prompt_lengths.tolist() == [2, 3] and gen.completion_lengths.tolist() == [3, 1]


def test_vllm_sampler_pushes_weights_through_the_v1_or_v0_worker_layout(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", _FakeVLLM([]))
    policy = torch.nn.Linear(2, 2)
    for wrapped in (True, False):
        received = {}
        runner = SimpleNamespace(model=SimpleNamespace(load_weights=received.update))
        # V1 wraps the worker, V0 does not
        driver = SimpleNamespace(worker=SimpleNamespace(model_runner=runner)) if wrapped else \
            SimpleNamespace(model_runner=runner)
        sampler = build_sampler("vllm", model_path="/models/tiny", pad_id=0)
        sampler.llm.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=driver))
        sampler.sync_weights(policy)
        assert set(received) == {"weight", "bias"} and torch.equal(received["weight"], policy.weight)
    sampler.llm.llm_engine.model_executor.driver_worker = object()
    with pytest.raises(RuntimeError, match="VLLM_ENABLE_V1_MULTIPROCESSING"):
        sampler.sync_weights(policy)
