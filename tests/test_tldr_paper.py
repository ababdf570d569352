"""TLDR paper profile loaders, offline: a tiny Llama + word-level tokenizer and a local jsonl, loaded by path
through the same functions that take hub ids at paper scale."""

from __future__ import annotations

import json

import pytest
import torch

from methods.tldr.generation import StopControl, sample
from methods.tldr.paper import (
    PAPER_DATASETS,
    MathProblem,
    encode_prompts,
    load_math_problems,
    load_tokenizer,
    score_math,
    special_tokens,
)
from methods.tldr.policy import PolicyArgs, build_policy, load_policy, save_policy
from tests.conftest import JOB_DEVICE, JOB_DTYPE

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "</think>", "Wait", "What", "is", "1+1?", "2+2?", "2", "4", "$",
         "Think", "briefly."]


def save_tiny(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = build_policy(len(WORDS), PolicyArgs(d_model=16, n_layers=1, n_heads=2, mlp_width=32), 0, 1, 2)
    save_policy(model, tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    return model


def test_tiny_llama_and_word_level_tokenizer_round_trip_by_path(tmp_path):
    model = save_tiny(tmp_path)
    loaded = load_policy(tmp_path / "model", torch.device("cpu"))
    tokens = torch.tensor([[1, 6, 7, 8]])
    assert torch.allclose(model(input_ids=tokens).logits, loaded(input_ids=tokens).logits)
    tokenizer = load_tokenizer(tmp_path / "model")
    assert tokenizer.decode(tokenizer.encode("What is 1+1?", add_special_tokens=False)) == "What is 1+1?"
    ids = special_tokens(tokenizer)
    assert (ids.end_think, ids.wait, ids.eos, ids.pad) == (4, 5, 2, 0)


def test_missing_local_model_or_dataset_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved policy"):
        load_policy(tmp_path / "absent", torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="no dataset file"):
        load_math_problems(str(tmp_path / "absent.jsonl"))


def test_local_jsonl_problems_are_encoded_sampled_with_budget_forcing_and_verified(tmp_path):
    save_tiny(tmp_path)
    data = tmp_path / "math.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [{"problem": "What is 1+1?", "answer": "2"},
                                                      {"problem": "What is 2+2?", "answer": "4"}]))
    problems = load_math_problems(str(data))
    assert problems == [MathProblem("What is 1+1?", "2"), MathProblem("What is 2+2?", "4")]
    tokenizer = load_tokenizer(tmp_path / "model")
    model = load_policy(tmp_path / "model", torch.device("cpu"))
    prompts, lengths = encode_prompts(tokenizer, problems, level="short")
    assert tokenizer.decode(prompts[0, :lengths[0]]).endswith("Think briefly.")
    ids = special_tokens(tokenizer)
    out = sample(model, prompts, lengths, ids, 6, torch.Generator().manual_seed(0), StopControl(max_think=2))
    stopped = (out[:, :3] == ids.end_think).any(1) | (out[:, :2] == ids.eos).any(1)  # thinking ends by 2
    assert bool(stopped.all())
    texts = ["</think> $2$", "</think> $5$"]  # scoring reads the text after </think>, via math-verify
    metrics = score_math(texts, problems, torch.tensor([3, 3]))
    assert metrics["accuracy"] == 0.5 and metrics["mean_tokens"] == 3.0


def test_paper_datasets_are_named_by_hub_id():
    assert PAPER_DATASETS["math500"][0] == "HuggingFaceH4/MATH-500"
    assert {"math500", "aime24", "amc", "olympiadbench", "deepscaler"} == set(PAPER_DATASETS)


def save_tiny_qwen2(directory):
    """A tiny Qwen2 causal LM with a byte-level BPE tokenizer (Qwen2's tokenizer family) and ``</think>``
    as an added token, saved by path: the paper profile's loaders take it where they take the hub id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    corpus = ["What is 1+1? Think briefly. Wait, 1+1 is 2. The answer is $2$.", "Compute 2+2 = 4. \\boxed{4}"]
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    tokenizer.add_tokens(["<think>", "</think>"])
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return tokenizer


def test_paper_profile_runs_through_the_job_code_on_a_tiny_qwen2_and_local_jsonl(tmp_path):
    """config/paper.yaml's tldr block, with the hub ids swapped for local paths and sizes made tiny, runs
    stage -> sft / ts / budget forcing / tldr through ``methods.core.job.run_job`` (the DAG's job code)."""
    import pandas as pd
    import yaml

    from methods.core.config import resolve_jobs, validate_schema
    from methods.core.job import run_job

    tokenizer = save_tiny_qwen2(tmp_path / "model")
    assert tokenizer.decode(tokenizer.encode("1+1 </think> $2$")) == "1+1 </think> $2$"
    rows = [{"problem": f"What is {a}+{b}?", "answer": str(a + b)} for a in range(4) for b in range(3)]
    (tmp_path / "pool.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "evalset.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:3]))

    config = yaml.safe_load(open("config/paper.yaml"))
    config.update(replicates=1, device=JOB_DEVICE, dtype=JOB_DTYPE, threads=1, only="tldr")
    block = config["methods"]["tldr"]["benchmarks"]["math_reasoning"]
    assert block["stages"]["sft_model"]["model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert block["data"]["eval_sets"] == ["math500", "amc", "aime24", "olympiadbench"]
    block["data"].update(eval_sets=[str(tmp_path / "evalset.jsonl")], train_set=str(tmp_path / "pool.jsonl"),
                         num_val=3)
    block["args"].update(max_new_tokens=6, eval_batch_size=8)
    block["stages"]["sft_model"]["model"] = str(tmp_path / "model")
    variants = block["variants"]
    variants["ts"]["scales"] = [1.0, 2.0]
    for name in ("budget_forcing", "budget_forcing_wait"):
        variants[name]["budgets"] = [2, 4]
    variants["tldr"].update(rl_steps=1, prompts_per_step=3, group_size=2, rl_lr=1e-3, log_every=1,
                            budgets={"short": 2, "medium": 4, "long": 6})
    validate_schema(config)
    jobs = [j for j in resolve_jobs(config) if j.method == "tldr"]
    assert {j.name for j in jobs} == {"sft_model", "sft", "ts", "budget_forcing", "budget_forcing_wait", "tldr"}
    stage = next(j for j in jobs if j.kind == "stage")
    stage.out = str(tmp_path / "stage")
    run_job(stage)
    reference = json.loads((tmp_path / "stage" / "reference.json").read_text())
    assert {"val", "test", "test_evalset"} <= set(reference)
    found = {}
    for job in jobs:
        if job.kind == "stage":
            continue
        job.out, job.inputs = str(tmp_path / job.name), {"sft_model": stage.out}
        run_job(job)
        table = pd.read_parquet(tmp_path / job.name / "metrics.parquet")
        assert table["value"].notna().all()
        found[job.name] = set(zip(table["metric"], table["split"], strict=True))
    assert ("accuracy", "test_evalset") in found["sft"]
    assert {("operating_point", "test"), ("accuracy", "sweep_val"), ("accuracy_matched_tokens", "test")} \
        <= found["ts"] & found["budget_forcing_wait"]
    assert {("length_error", "test_short"), ("levels_ordered", "test"), ("mean_tokens", "test_evalset_long"),
            ("reward", "train")} <= found["tldr"]
