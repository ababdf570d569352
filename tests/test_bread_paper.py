"""BREAD paper-profile loaders, offline: a tiny Qwen2 with a byte-level BPE tokenizer and local jsonl files,
loaded by path through the same functions that take hub ids at paper scale."""

from __future__ import annotations

import json

import pytest
import torch

from methods.bread.paper import (
    EVAL_SETS,
    PAPER_MODELS,
    boxed_answer,
    episode_token_ends,
    load_eval_problems,
    load_expert_problems,
    load_student,
    math_verify_rewards,
    split_episodes,
)
from tests.conftest import JOB_DEVICE, JOB_DTYPE

transformers = pytest.importorskip("transformers")

TRACE = "Let x = 2.\n\nThen x + 2 = 4.\n\nSo the answer is $\\boxed{4}$."


def save_tiny_qwen(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TRACE, "What is 2+2? The answer is 4."] * 4, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>")
    cfg = transformers.Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                   max_position_embeddings=128, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(cfg)
    model.save_pretrained(tmp_path / "student")
    tokenizer.save_pretrained(tmp_path / "student")
    return model


def test_tiny_qwen2_student_loads_by_path_with_a_pad_token_and_round_trips_text(tmp_path):
    model = save_tiny_qwen(tmp_path)
    loaded, tokenizer = load_student(str(tmp_path / "student"))
    tokens = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(model(input_ids=tokens).logits, loaded(input_ids=tokens).logits)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer.encode(TRACE, add_special_tokens=False)) == TRACE
    assert PAPER_MODELS["qwen2.5-1.5b"] == "Qwen/Qwen2.5-1.5B-Instruct"


def test_episode_boundaries_are_token_positions_of_the_whole_trace(tmp_path):
    save_tiny_qwen(tmp_path)
    _, tokenizer = load_student(str(tmp_path / "student"))
    episodes = split_episodes(TRACE)
    assert len(episodes) == 3 and "".join(episodes) == TRACE
    ids, ends = episode_token_ends(tokenizer, TRACE)
    assert ends[-1] == len(ids) and ends == sorted(ends) and len(set(ends)) == 3
    prefix = tokenizer.decode(ids[: ends[0]])
    assert prefix.startswith("Let x = 2.") and "Then" not in prefix


def test_s1k_and_numina_style_jsonl_give_problems_traces_and_checkable_answers(tmp_path):
    s1k = tmp_path / "s1k.jsonl"
    s1k.write_text(json.dumps({"question": "What is 2+2?", "deepseek_thinking_trajectory": TRACE,
                               "deepseek_attempt": "The answer is \\boxed{4}.", "solution": "4"}) + "\n")
    numina = tmp_path / "numina.jsonl"
    numina.write_text("\n".join(json.dumps(r) for r in [
        {"problem": "Compute 1/2 + 1/2.", "solution": "Add.\n\nWe get $\\boxed{\\frac{2}{2}}$."},
        {"problem": "No answer here.", "solution": "Nothing boxed."}]) + "\n")
    (one,) = load_expert_problems(str(s1k))
    assert (one.problem, one.trace, one.answer) == ("What is 2+2?", TRACE, "4")
    (kept,) = load_expert_problems(str(numina))  # the row without a boxed answer is dropped
    assert kept.answer == "\\frac{2}{2}" and boxed_answer("x \\boxed{a{b}c} y") == "a{b}c"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "?"}) + "\n")
    with pytest.raises(KeyError, match="expected s1K fields"):
        load_expert_problems(str(bad))
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        load_expert_problems(str(tmp_path / "absent.jsonl"))


def test_math_verify_reward_accepts_equivalent_answers_and_eval_sets_load_locally(tmp_path):
    rewards = math_verify_rewards(["so $\\boxed{1}$", "it is $\\frac{1}{2}$", "I think 3"], ["1", "0.5", "4"])
    assert rewards.tolist() == [1.0, 1.0, 0.0]
    local = tmp_path / "math500.jsonl"
    local.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    assert load_eval_problems(str(local))[0].answer == "2"
    assert set(EVAL_SETS) == {"math500", "aime24", "amc", "olympiadbench"}


def save_tiny_qwen2_bpe(directory, corpus: list[str]):
    """A tiny Qwen2 with a byte-level BPE tokenizer (Qwen2's family; reloads exactly), saved by path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>",
                                                     pad_token="<|endoftext|>")
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    transformers.Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def test_paper_profile_runs_sft_then_grpo_and_bread_then_eval_through_the_job_code(tmp_path):
    """config/paper.yaml's BREAD math_reasoning block, with hub ids swapped for a tiny local Qwen2 and local
    s1K / NuminaMath / eval jsonl, runs stage -> sft / grpo / sft_grpo / bread through ``run_job`` (the DAG's
    job code): vLLM is absent, so rollouts fall back to transformers generate; BREAD's all-failed groups are
    branched from expert anchors, so it uses expert tokens where GRPO sees only zero-variance groups."""
    import pandas as pd
    import yaml

    from methods.core.config import resolve_jobs, validate_schema
    from methods.core.job import run_job

    numina = [{"problem": f"What is {a}+{b}?", "solution": f"We add {a} and {b}.\n\nSo the sum is "
               f"$\\boxed{{{a + b}}}$."} for a in range(3) for b in range(2)]
    s1k = [{"question": r["problem"], "deepseek_thinking_trajectory": r["solution"],
            "deepseek_attempt": r["solution"], "solution": str(a + b)}
           for r, (a, b) in zip(numina, [(a, b) for a in range(3) for b in range(2)], strict=True)]
    evalset = [{"problem": f"What is {a}+1?", "answer": str(a + 1)} for a in range(3)]
    for name, rows in {"numina": numina, "s1k": s1k, "evalset": evalset}.items():
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    save_tiny_qwen2_bpe(tmp_path / "model", [r["solution"] for r in numina] + [r["problem"] for r in numina])

    config = yaml.safe_load(open("config/paper.yaml"))
    config.update(replicates=1, device=JOB_DEVICE, dtype=JOB_DTYPE, threads=1, only="bread")
    block = config["methods"]["bread"]["benchmarks"]["math_reasoning"]
    assert block["args"]["model"] == "Qwen/Qwen2.5-1.5B-Instruct" and block["args"]["backend"] == "vllm"
    assert (block["args"]["sft_data"], block["args"]["rl_data"]) == ("s1k", "numina")
    assert block["data"]["eval_sets"] == ["math500", "aime24", "amc", "olympiadbench"]
    block["data"].update(eval_sets=[str(tmp_path / "evalset.jsonl")], train_set=str(tmp_path / "evalset.jsonl"))
    block["args"].update(model=str(tmp_path / "model"), sft_data=str(tmp_path / "s1k.jsonl"),
                         rl_data=str(tmp_path / "numina.jsonl"), num_rl_problems=None, max_trace_tokens=64,
                         max_new_tokens=4, eval_batch_size=2, group_size=2, prompts_per_step=2, log_every=1)
    block["stages"]["sft_ckpt"].update(sft_steps=2, sft_batch_size=2, sft_lr=1e-3)
    for name in ("grpo", "sft_grpo", "bread"):
        block["variants"][name].update(rl_steps=2, rl_lr=1e-3)
    validate_schema(config)
    jobs = [j for j in resolve_jobs(config) if j.method == "bread" and j.benchmark == "math_reasoning"]
    assert {j.name for j in jobs} == {"sft_ckpt", "sft", "grpo", "sft_grpo", "bread"}
    stage = next(j for j in jobs if j.kind == "stage")
    stage.out = str(tmp_path / "stage")
    run_job(stage)
    assert (tmp_path / "stage" / "student" / "config.json").is_file()
    found = {}
    for job in jobs:
        if job.kind == "stage":
            continue
        job.out = str(tmp_path / job.name)
        job.inputs = {"sft_ckpt": stage.out} if job.inputs else {}
        run_job(job)
        table = pd.read_parquet(tmp_path / job.name / "metrics.parquet")
        assert table["value"].notna().all()
        found[job.name] = {(m, s): v for m, s, v in zip(table["metric"], table["split"], table["value"],
                                                        strict=True)}
    for name in ("sft", "grpo", "sft_grpo", "bread"):
        assert {("accuracy", "test"), ("accuracy", "test_evalset"), ("mean_tokens", "test")} <= set(found[name])
    assert ("zero_variance_fraction", "train") in found["grpo"]
    assert 0.0 < found["bread"][("expert_token_fraction", "train")] <= 1.0
    assert found["bread"][("guided_group_fraction", "train")] > 0.0
    assert ("reward", "train") in found["bread"]


def test_branching_with_token_episode_ends_cuts_prefixes_at_episode_boundaries():
    """Multi-token episodes (paper profile): the prefix given to the student ends at an episode boundary."""
    from methods.bread.branching import branch_failed_groups
    from methods.rl.generation import Generation, right_pad

    class Echo:  # writes nothing but EOS: every branch fails, so the fallback inserts the expert's trace
        def sample(self, prompts, max_new_tokens, *, temperature=1.0, generator=None):
            rows = [torch.cat([p, torch.tensor([9])]) for p in prompts]
            return Generation(right_pad(rows, 0), torch.tensor([p.numel() for p in prompts]),
                              torch.ones(len(prompts), dtype=torch.long), 0)

    prompts, traces = [torch.tensor([1, 2])], [torch.tensor([3, 4, 5, 6, 7, 9])]
    ends = [torch.tensor([0, 2, 4, 6])]  # three episodes of two tokens (the last one carries EOS)
    seen = []

    def reward(gen, ids):
        seen.extend(int(n) for n in gen.prompt_lengths)
        tokens = torch.nn.functional.pad(gen.tokens, (0, 8))
        return (tokens[:, 2:7] == torch.tensor([3, 4, 5, 6, 7])).all(1).float()

    out = branch_failed_groups(Echo(), prompts, traces, torch.tensor([3]), torch.tensor([0]), reward, 2, 1.0,
                               torch.Generator().manual_seed(0), episode_ends=ends)
    assert set(seen) <= {2 + 2, 2 + 4}  # prompt + 1 or 2 episodes, never a cut inside an episode
    assert out.rewards.tolist() == [1.0, 0.0] and out.prefix_episodes.tolist() == [3]
    assert out.generation.tokens[0, :8].tolist() == [1, 2, 3, 4, 5, 6, 7, 9]
