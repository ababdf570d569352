"""Paper scale: SSA fine-tuning of a pretrained causal LM and its lm-eval evaluation.

The SSA paper (arXiv 2411.12892, Sec. 5) fine-tunes GPT-2 124M and Pythia-160M with the SSA
temperatures on WikiText-103 / OpenWebText and reports perplexity and zero-shot accuracy. Every
loader takes a hub id *or* a local path, so the tests run the same functions offline on tiny models
saved with ``save_pretrained`` and on a local jsonl corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from methods.core.devices import autocast
from methods.core.training import cosine_schedule


def load_causal_lm(name_or_path: str, device: torch.device, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    """A pretrained causal LM and its tokenizer, by hub id (``gpt2``, ``EleutherAI/pythia-160m``) or path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, attn_implementation="sdpa")
    return model.to(device), tokenizer


def load_texts(dataset: str, config: str | None, split: str, text_field: str, max_docs: int = 0) -> list[str]:
    """Documents of a hub dataset (``Salesforce/wikitext`` + ``wikitext-103-raw-v1``, ``openwebtext``) or of
    a local ``.json`` / ``.jsonl`` file with one document per line. A local file has one split, ``train``:
    slice it (``train[:90%]`` / ``train[90%:]``) so that training and evaluation documents differ."""
    from datasets import load_dataset

    if dataset.endswith((".json", ".jsonl")):
        if not Path(dataset).is_file():
            raise FileNotFoundError(f"no such corpus file: {dataset}")
        if not split.startswith("train"):
            raise ValueError(f"a local corpus file has only the split 'train'; got split '{split}' for {dataset} "
                             "(slice it, e.g. train_split 'train[:90%]' and eval_split 'train[90%:]')")
        data = load_dataset("json", data_files=dataset, split=split)
    else:
        data = load_dataset(dataset, config, split=split)
    if text_field not in data.column_names:
        raise KeyError(f"text field '{text_field}' not in {dataset}; columns: {data.column_names}")
    if max_docs:
        data = data.select(range(min(max_docs, len(data))))
    return [t for t in data[text_field] if t and t.strip()]


def token_blocks(tokenizer: Any, texts: list[str], seq_len: int, max_tokens: int = 0) -> torch.Tensor:
    """Pack the documents (EOS between them) into (n, seq_len + 1) blocks for next-token training."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"])
        if eos is not None:
            ids.append(eos)
        if max_tokens and len(ids) >= max_tokens:
            break
    n = len(ids) // (seq_len + 1)
    if n == 0:
        raise ValueError(f"corpus has {len(ids)} tokens, fewer than one block of {seq_len + 1}")
    return torch.tensor(ids[: n * (seq_len + 1)]).view(n, seq_len + 1)


def finetune(model: nn.Module, blocks: torch.Tensor, steps: int, batch_size: int, lr: float,
             temperature_lr: float, generator: torch.Generator, device: torch.device, dtype: torch.dtype,
             log: Callable[[str], None] = print, log_every: int = 50,
             on_log: Callable[[int, float], None] | None = None) -> list[float]:
    """Next-token fine-tuning; SSA temperature parameters get their own learning rate (as the released
    code gives ``beta`` its own)."""
    temp = [p for n, p in model.named_parameters() if "ssa_temperature" in n]
    temp_ids = {id(p) for p in temp}
    rest = [p for p in model.parameters() if id(p) not in temp_ids and p.requires_grad]
    groups = [{"params": rest, "lr": lr}] + ([{"params": temp, "lr": temperature_lr, "weight_decay": 0.0}]
                                             if temp else [])
    opt = torch.optim.AdamW(groups, weight_decay=0.1)
    sched = cosine_schedule(opt, steps, 0.05)
    model.train()
    losses, running = [], 0.0
    for step in range(1, steps + 1):
        idx = torch.randint(0, blocks.shape[0], (batch_size,), generator=generator)
        batch = blocks[idx].to(device)
        with autocast(device, dtype):
            logits = model(batch[:, :-1]).logits
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if step % log_every == 0 or step == steps:
            n = log_every if step % log_every == 0 else step % log_every
            losses.append(running / n)
            log(f"step {step}/{steps} loss {running / n:.4f}")
            if on_log is not None:
                on_log(step, running / n)
                model.train()
            running = 0.0
    return losses


@torch.no_grad()
def block_perplexity_nll(model: nn.Module, blocks: torch.Tensor, device: torch.device, dtype: torch.dtype,
                         batch_size: int = 8) -> torch.Tensor:
    """Per-token NLL (nats) of held-out blocks, (n, seq_len)."""
    model.eval()
    out = []
    for start in range(0, blocks.shape[0], batch_size):
        batch = blocks[start : start + batch_size].to(device)
        with autocast(device, dtype):
            logits = model(batch[:, :-1]).logits
        nll = nn.functional.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none")
        out.append(nll.cpu())
    return torch.cat(out)


def lm_eval_results(model: nn.Module, tokenizer: Any, tasks: list[str], include_path: str | None = None,
                    limit: int | float | None = None, batch_size: int = 8) -> dict[str, dict[str, Any]]:
    """Run lm-evaluation-harness on an in-memory model; ``include_path`` adds local task YAMLs."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit, log_samples=False)
    return out["results"]
