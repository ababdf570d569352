"""SSA on pretrained Hugging Face models: the patch is exact at identity, works with the KV cache, adds
under 0.5% parameters at GPT-2 124M / Pythia-160M size, and the paper-scale loaders and the lm-eval
path run offline on tiny local models and a local jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from methods.ssa import hf_patch
from tests.conftest import JOB_DEVICE, JOB_DTYPE

TINY = {
    "gpt2": lambda: GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=64,
                                               bos_token_id=0, eos_token_id=0)),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, num_attention_heads=4,
                                                  num_key_value_heads=2, hidden_size=32, intermediate_size=64,
                                                  vocab_size=64)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=2, num_attention_heads=4,
                                                  num_key_value_heads=2, hidden_size=32, intermediate_size=64,
                                                  vocab_size=64)),
    "pythia": lambda: GPTNeoXForCausalLM(GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=4,
                                                       hidden_size=32, intermediate_size=64, vocab_size=64)),
}


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = TINY[name]()
    model.set_attn_implementation("sdpa")
    return model.eval()


@pytest.mark.parametrize("name", sorted(TINY))
def test_patched_model_at_identity_temperatures_gives_the_original_logits(name: str) -> None:
    model = tiny(name)
    tokens = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(tokens).logits
        added = hf_patch.patch(model)
        after = model(tokens).logits
    assert len(added) == 2 and model.config._attn_implementation == "ssa"
    assert torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_moved_temperatures_change_logits_and_agree_with_the_kv_cache(name: str) -> None:
    model = tiny(name)
    tokens = torch.randint(0, 64, (1, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(tokens).logits
        for temp in hf_patch.patch(model):
            torch.nn.init.normal_(temp.query_vec, std=1.0)
            torch.nn.init.normal_(temp.value_vec, std=1.0)
            temp.position_param_value.fill_(0.5)
        full = model(tokens).logits
        prefix = model(tokens[:, :7], use_cache=True)
        step = model(tokens[:, 7:], past_key_values=prefix.past_key_values, use_cache=True).logits
    assert not torch.allclose(before, full, atol=1e-3)
    assert torch.allclose(step, full[:, 7:], atol=1e-5)


@pytest.mark.parametrize("config", [
    GPT2Config(),  # GPT-2 124M
    GPTNeoXConfig(num_hidden_layers=12, num_attention_heads=12, hidden_size=768, intermediate_size=3072,
                  vocab_size=50304),  # Pythia-160M
])
def test_ssa_adds_under_half_a_percent_to_the_papers_models(config) -> None:
    with torch.device("meta"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(config)
    hf_patch.patch(model)
    assert 0 < hf_patch.extra_parameter_fraction(model) < 0.005


def test_patch_refuses_a_model_without_attention_modules() -> None:
    with pytest.raises(ValueError, match="no attention modules"):
        hf_patch.patch(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def _tiny_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "<eos> <unk> the cat sat on mat dog ran a red blue is sky".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>",
                                   pad_token="<eos>")
    fast.save_pretrained(path)
    return fast


@pytest.fixture
def local_model(tmp_path: Path) -> Path:
    _tiny_tokenizer(tmp_path / "model")
    tiny("gpt2").save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_paper_loaders_finetune_a_local_model_with_ssa(local_model: Path, tmp_path: Path) -> None:
    from methods.ssa import pretrained

    corpus = tmp_path / "corpus.jsonl"
    line = json.dumps({"text": "the cat sat on the mat a red dog ran"}) + "\n"
    corpus.write_text(line * 20)
    model, tokenizer = pretrained.load_causal_lm(str(local_model), torch.device("cpu"), torch.float32)
    hf_patch.patch(model)
    texts = pretrained.load_texts(str(corpus), None, "train", "text")
    blocks = pretrained.token_blocks(tokenizer, texts, seq_len=15)
    before = pretrained.block_perplexity_nll(model, blocks, torch.device("cpu"), torch.float32).mean()
    pretrained.finetune(model, blocks, steps=30, batch_size=4, lr=3e-3, temperature_lr=1e-2,
             generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), dtype=torch.float32,
             log=lambda _: None)
    after = pretrained.block_perplexity_nll(model, blocks, torch.device("cpu"), torch.float32).mean()
    assert after < before
    assert any(p.abs().sum() > 0 for p in hf_patch.ssa_parameters(model))  # the temperatures trained


def _local_choice_task(tmp_path: Path) -> Path:
    """A multiple-choice lm-eval task over a local jsonl (``dataset_path: json``); returns its folder."""
    data = tmp_path / "choice.jsonl"
    rows = [{"query": "the sky is", "choices": ["blue", "red"], "gold": 0},
            {"query": "the cat sat on the", "choices": ["mat", "dog"], "gold": 0},
            {"query": "a dog", "choices": ["ran", "sky"], "gold": 0}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "local_choice.yaml").write_text(
        "task: octobench_local_choice\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{query}}'\n"
        "doc_to_choice: '{{choices}}'\n"
        "doc_to_target: gold\n"
        "metric_list:\n  - metric: acc\n")
    return tasks


def test_finetune_job_runs_end_to_end_on_a_local_model_corpus_and_lm_eval_task(local_model: Path,
                                                                              tmp_path: Path) -> None:
    import pandas as pd

    from methods.core.config import resolve_jobs, validate_schema
    from methods.core.job import run_job

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text((json.dumps({"text": "the cat sat on the mat a red dog ran"}) + "\n") * 20)
    config = {"scale": "test", "replicates": 1, "device": JOB_DEVICE, "dtype": JOB_DTYPE,
              "methods": {"ssa": {"benchmarks": {"local": {
        "benchmark": "lm_harness",
        "data": {"dataset": str(corpus), "dataset_config": None, "train_split": "train[:80%]",
                 "eval_split": "train[80%:]", "tasks": ["octobench_local_choice"],
                 "include_path": str(_local_choice_task(tmp_path))},
        "variants": {"tiny_ssa_ft": {"family": "finetune", "model": str(local_model), "steps": 4,
                                     "batch_size": 2, "seq_len": 15, "eval_every": 2}}}}}}}
    validate_schema(config)
    (spec,) = resolve_jobs(config)
    spec.out = str(tmp_path / "run")
    rows = pd.read_parquet(run_job(spec) / "metrics.parquet")
    curve = rows[(rows.metric == "perplexity") & rows.step.notna()]
    assert sorted(curve.step) == [0.0, 2.0, 4.0]
    assert set(rows.metric) >= {"local_choice_acc", "extra_parameters", "extra_parameter_fraction"}
    assert rows.loc[rows.metric == "extra_parameter_fraction", "value"].item() < 0.005


def test_a_local_corpus_is_sliced_into_disjoint_train_and_eval_documents(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(10)))
    from methods.ssa import pretrained

    train = pretrained.load_texts(str(corpus), None, "train[:80%]", "text")
    held_out = pretrained.load_texts(str(corpus), None, "train[80%:]", "text")
    assert (len(train), len(held_out)) == (8, 2) and not set(train) & set(held_out)
    with pytest.raises(ValueError, match="only the split 'train'"):
        pretrained.load_texts(str(corpus), None, "validation", "text")
