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
    assert set(PAPER_DATASETS) == {"math500", "aime24", "amc", "olympiadbench"}
