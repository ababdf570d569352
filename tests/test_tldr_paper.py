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


@pytest.mark.parametrize("backend", ["torch", "vllm", "vllm-absent"])
def test_paper_profile_runs_through_the_job_code_on_a_tiny_qwen2_and_local_jsonl(tmp_path, monkeypatch, capsys,
                                                                                  backend):
    """config/paper.yaml's tldr block, with the hub ids swapped for local paths and sizes made tiny, runs
    stage -> sft / ts / budget forcing / tldr through ``methods.core.job.run_job`` (the DAG's job code),
    sampling with the torch sampler or through vLLM's logits-processor path (a stand-in engine here), or,
    where vllm is not installed, with the torch sampler and a log line saying so."""
    import sys

    import pandas as pd
    import yaml

    fake = install_fake_vllm(monkeypatch) if backend == "vllm" else None
    if backend == "vllm-absent":
        monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
        monkeypatch.delitem(sys.modules, "methods.tldr.vllm_stop", raising=False)
        backend = "vllm"

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
    assert block["args"]["backend"] == "vllm"  # the paper profile asks for vLLM (torch where it is absent)
    block["args"].update(max_new_tokens=6, eval_batch_size=8, backend=backend)
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
    fell_back = "vllm is not installed: sampling uses the torch sampler" in capsys.readouterr().err
    assert fell_back == (backend == "vllm" and fake is None)
    if fake is not None:  # every job sampled through the engine; RL pushed its weights after each update
        assert len(fake.engines) == len(jobs) and all(e.requests for e in fake.engines)
        assert [e.synced for e in fake.engines if e.synced] == [1]
        assert any(EXTRA_KEY in (p.extra_args or {}) for e in fake.engines for p in e.requests)


# --- vLLM's side of the stop controls, against a stand-in engine (vLLM runs on GPU boxes only) ---

from methods.tldr.generation import SpecialTokens, control_logits  # noqa: E402


class _FakeVLLM:
    """Stands in for ``vllm``: an ``LLM`` that decodes one request at a time with a transformers model and
    applies the loaded logits processors the way vLLM's ``AdapterLogitsProcessor`` contract says (one
    per-request callable from ``new_req_logits_processor``, called with the tokens so far and the row)."""

    def __init__(self, keep_stop_token: bool) -> None:
        from types import ModuleType, SimpleNamespace

        from transformers import AutoModelForCausalLM

        fake, self.engines = self, []
        self.modules = {name: ModuleType(name) for name in
                        ("vllm", "vllm.v1", "vllm.v1.sample", "vllm.v1.sample.logits_processor")}

        class AdapterLogitsProcessor:
            def __init__(self, vllm_config, device, is_pin_memory) -> None:
                self.device = device

        class SamplingParams:
            def __init__(self, temperature=1.0, max_tokens=16, seed=None, stop_token_ids=None, extra_args=None):
                self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed
                self.stop_token_ids, self.extra_args = stop_token_ids or [], extra_args

        class LLM:
            def __init__(self, model: str, logits_processors=(), **kwargs) -> None:
                self.hf = AutoModelForCausalLM.from_pretrained(model).eval()
                self.kwargs, self.requests, self.synced = kwargs, [], 0
                self.processors = [cls(None, torch.device("cpu"), False) for cls in logits_processors]
                runner = SimpleNamespace(model=SimpleNamespace(load_weights=self._load_weights))
                worker = SimpleNamespace(worker=SimpleNamespace(model_runner=runner))
                self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=worker))
                fake.engines.append(self)

            def _load_weights(self, items) -> None:
                self.hf.load_state_dict({k: v.detach().cpu().float() for k, v in items})
                self.synced += 1

            @torch.no_grad()
            def generate(self, prompts, params, use_tqdm=True):
                outs = []
                for prompt, p in zip(prompts, params, strict=True):
                    self.requests.append(p)
                    for proc in self.processors:
                        type(proc).validate_params(p)
                    rows = [r for r in (proc.new_req_logits_processor(p) for proc in self.processors) if r]
                    gen, out = torch.Generator().manual_seed(p.seed), []
                    for _ in range(p.max_tokens):
                        logits = self.hf(input_ids=torch.tensor([prompt["prompt_token_ids"] + out])).logits[0, -1]
                        for row in rows:
                            logits = row(out, logits)
                        token = int(torch.multinomial(torch.softmax(logits / p.temperature, -1), 1, generator=gen))
                        if token in p.stop_token_ids:
                            out += [token] if keep_stop_token else []
                            break
                        out.append(token)
                    outs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=out)]))
                return outs

        self.modules["vllm"].LLM, self.modules["vllm"].SamplingParams = LLM, SamplingParams
        self.modules["vllm.v1.sample.logits_processor"].AdapterLogitsProcessor = AdapterLogitsProcessor


def install_fake_vllm(monkeypatch, keep_stop_token: bool = True) -> _FakeVLLM:
    import sys

    fake = _FakeVLLM(keep_stop_token)
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "methods.tldr.vllm_stop", raising=False)  # re-import against the fake
    return fake


EXTRA_KEY = "tldr_stop_control"  # methods.tldr.vllm_stop.EXTRA_KEY (that module needs vllm to import)


@pytest.mark.parametrize("control", [StopControl(ts_scale=2.0), StopControl(ts_scale=0.5, centered=False),
                                     StopControl(min_think=3), StopControl(max_think=2),
                                     StopControl(ts_scale=1.5, min_think=1, max_think=4)])
def test_vllm_row_processor_applies_the_torch_samplers_rule_row_by_row(monkeypatch, control):
    install_fake_vllm(monkeypatch)
    from methods.tldr.vllm_stop import EXTRA_KEY as key
    from methods.tldr.vllm_stop import StopControlProcessor, encode_control

    assert key == EXTRA_KEY
    tokens = SpecialTokens(end_think=4, wait=5, eos=2, pad=0)
    params = type("P", (), {"extra_args": {key: encode_control(control, tokens)}})()
    row = StopControlProcessor(None, torch.device("cpu"), False).new_req_logits_processor(params)
    logits = torch.randn(6, 12, generator=torch.Generator().manual_seed(0))
    history = [[], [7], [7, 8], [7, 8, 9], [7, 8, 9, 4], [7, 8, 9, 4, 10]]  # </think> at index 3
    got = torch.stack([row(h, logits[t].clone()) for t, h in enumerate(history)])
    thinking = torch.tensor([4 not in h for h in history])
    want = control_logits(logits, torch.arange(6), thinking, control, tokens)
    assert torch.equal(got, want)
    plain = type("P", (), {"extra_args": None})()
    assert StopControlProcessor(None, torch.device("cpu"), False).new_req_logits_processor(plain) is None
    with pytest.raises(ValueError, match="StopControl takes"):
        StopControlProcessor.validate_params(type("P", (), {"extra_args": {key: {"control": {"tau": 1},
                                                                                 "tokens": {}}}})())


@pytest.mark.parametrize("keep_stop_token", [True, False])
def test_vllm_stop_sampler_forces_the_budget_and_returns_the_torch_layout(tmp_path, monkeypatch, keep_stop_token):
    """Budget forcing with Wait through the engine: thinking lasts exactly the budget unless eos comes first,
    and rows come back (n, max_new_tokens) with eos kept and PAD after it, whether or not vLLM keeps eos."""
    fake = install_fake_vllm(monkeypatch, keep_stop_token)
    from methods.tldr.vllm_stop import VLLMStopSampler

    save_tiny(tmp_path)
    tokenizer = load_tokenizer(tmp_path / "model")
    ids = special_tokens(tokenizer)
    problems = [MathProblem("What is 1+1?", "2"), MathProblem("What is 2+2?", "4")] * 4
    prompts, lengths = encode_prompts(tokenizer, problems)
    generate = VLLMStopSampler(str(tmp_path / "model"), ids, gpu_memory_utilization=0.3)
    assert fake.engines[0].kwargs == {"gpu_memory_utilization": 0.3}
    out = generate(prompts, lengths, 8, torch.Generator().manual_seed(0), StopControl(max_think=3, min_think=3))
    assert out.shape == (8, 8)
    for row in out.tolist():
        eos = row.index(ids.eos) if ids.eos in row else len(row)
        assert all(t == ids.pad for t in row[eos + 1:])
        if eos >= 3:  # thinking ran to the budget: </think> exactly there, never before
            assert row[3] == ids.end_think and ids.end_think not in row[:3]
    assert [p.seed for p in fake.engines[0].requests] == sorted({p.seed for p in fake.engines[0].requests})

