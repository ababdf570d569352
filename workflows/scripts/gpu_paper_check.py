"""A short spot check of the paper profile on one GPU, through config/paper.yaml's own blocks.

Machines without a model hub cannot load GPT-2 by id, so this script saves a GPT-2 124M-architecture model
(random initialisation) with a byte-level BPE tokenizer trained on the offline ``pydoc_data`` corpus, and
writes that corpus as jsonl; it then derives a config from config/paper.yaml in which only sizes, ids and
paths change, and prints the Snakemake command that runs it:

* ``ssa``: the wikitext103 block's gpt2_ft and gpt2_ssa_ft variants (bf16, seq 1024) on the local model and
  corpus, fewer steps: throughput and held-out perplexity of SSA vs vanilla from the same initialisation.
* ``cat``: zoology's MQAR grid at seq_len 64 and 128 over a reduced (d_model, lr) sweep, fewer steps.
* ``cot2``: the paper-size MNNS SFT variants (2 layers, 2 heads, d = 24 and 32, batch 16, lr 1e-4, the
  paper's dropout and curve cadence) for a few epochs instead of 1000: epoch time on the device through the
  job code (``--cot2-epochs 0`` leaves CoT2 out).

    python workflows/scripts/gpu_paper_check.py --root /tmp/paper_check > /tmp/paper_check/cmd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def save_local_gpt2(directory: Path, corpus: list[str], vocab_size: int = 8192, n_layer: int = 12) -> None:
    """GPT-2 124M's architecture with a byte-level BPE tokenizer learned on ``corpus``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=["<|endoftext|>"])
    eos = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=eos, eos_token=eos,
                                        unk_token=eos)
    if len(tokenizer) < 256 or not tokenizer("def f(x): return x")["input_ids"]:
        raise RuntimeError(f"the local BPE tokenizer did not build (vocabulary {len(tokenizer)})")
    tokenizer.save_pretrained(directory)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=768, n_layer=n_layer, n_head=12,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(directory)


def pydoc_corpus() -> list[str]:
    from pydoc_data.topics import topics

    return [text for _, text in sorted(topics.items())]


COT2_VARIANTS = ("cot2_csft_d24", "discrete_sft_d24", "cot2_csft_d32")


def derive_config(root: Path, ssa_steps: int, mqar_steps: int, mqar_lengths: tuple[int, ...] = (64, 128),
                  cot2_epochs: int = 0) -> dict:
    config = yaml.safe_load(open("config/paper.yaml"))
    mqar_blocks = [f"mqar_l{length}" for length in mqar_lengths]
    only = ["ssa:wikitext103"] + [f"cat:{name}" for name in mqar_blocks] + (["cot2:mnns"] if cot2_epochs else [])
    config.update(replicates=1, only=",".join(only))
    ssa = config["methods"]["ssa"]["benchmarks"]["wikitext103"]
    ssa["data"].update(dataset=str(root / "corpus.jsonl"), dataset_config=None, train_split="train[:90%]",
                       eval_split="train[90%:]", max_eval_docs=200, tasks=[])
    ssa["args"] = {**ssa["args"], "steps": ssa_steps, "eval_every": max(ssa_steps // 4, 1)}
    ssa["variants"] = {name: {**spec, "model": str(root / "gpt2")} for name, spec in ssa["variants"].items()
                       if name in ("gpt2_ft", "gpt2_ssa_ft")}
    for name in mqar_blocks:
        block = config["methods"]["cat"]["benchmarks"][name]
        block["data"] = {**block["data"], "num_train": 20000, "num_test": 1000}
        block["args"] = {**block["args"], "steps": mqar_steps}
        block["sweep"] = {"d_model": [64, 128, 256], "lr": [4.64e-4, 2.15e-3]}
    if cot2_epochs:
        mnns = config["methods"]["cot2"]["benchmarks"]["mnns"]
        mnns["variants"] = {name: {**mnns["variants"][name], "epochs": cot2_epochs, "curve_every": 1}
                            for name in COT2_VARIANTS}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--ssa-steps", type=int, default=400)
    parser.add_argument("--mqar-steps", type=int, default=2000)
    parser.add_argument("--mqar-lengths", type=int, nargs="+", default=[64, 128], choices=[64, 128, 256])
    parser.add_argument("--cot2-epochs", type=int, default=0, help="paper-size MNNS SFT epochs (0: no CoT2)")
    parser.add_argument("--n-layer", type=int, default=12, help="GPT-2 124M has 12; fewer for a quick check")
    args = parser.parse_args()
    corpus = pydoc_corpus()
    args.root.mkdir(parents=True, exist_ok=True)
    with open(args.root / "corpus.jsonl", "w") as fh:
        for text in corpus:
            fh.write(json.dumps({"text": text}) + "\n")
    save_local_gpt2(args.root / "gpt2", corpus, n_layer=args.n_layer)
    config_path = args.root / "paper_check.yaml"
    config_path.write_text(yaml.safe_dump(derive_config(args.root, args.ssa_steps, args.mqar_steps,
                                                        tuple(args.mqar_lengths), args.cot2_epochs)))
    print(f"snakemake --configfile {config_path} --cores all --resources gpu=16 --keep-going --rerun-incomplete")


if __name__ == "__main__":
    main()
