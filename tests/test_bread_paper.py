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
