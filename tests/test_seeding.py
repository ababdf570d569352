import torch

from methods.core.seeding import data_seed, derive_seed, inductor_follows_determinism, run_seed, seed_everything


def test_derived_seeds_are_stable_and_distinct_per_variant():
    assert derive_seed("a", 1) == derive_seed("a", 1)
    assert run_seed(0, "mqar", "cat", "cat_1l", 0) != run_seed(0, "mqar", "cat", "attention_1l", 0)
    assert run_seed(0, "mqar", "cat", "cat_1l", 0) != run_seed(0, "mqar", "cat", "cat_1l", 1)


def test_data_seed_ignores_method_and_variant_so_all_methods_share_the_split():
    assert data_seed(0, "mqar", 2) == data_seed(0, "mqar", 2)
    assert data_seed(0, "mqar", 2) != data_seed(0, "mqar", 1)
    assert data_seed(0, "mqar", 0) != data_seed(1, "mqar", 0)


def test_seed_everything_makes_torch_repeatable():
    seed_everything(123)
    a = torch.randn(5)
    seed_everything(123)
    assert torch.equal(a, torch.randn(5))


def test_seed_everything_asks_for_deterministic_kernels_as_the_public_call_does():
    """The same flags as torch.use_deterministic_algorithms(True, warn_only=True), also for inductor."""
    torch.use_deterministic_algorithms(False)
    seed_everything(0)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    import torch._inductor.config as inductor_config

    inductor_config.deterministic = False
    inductor_follows_determinism()
    assert inductor_config.deterministic
    seed_everything(1)  # inductor already loaded: the flag is copied there at once
    assert inductor_config.deterministic


def test_a_job_start_does_not_import_the_compiler():
    """Seeding a job keeps torch's compiler stack unloaded (it cost ~1.3 s of every job's start)."""
    import subprocess
    import sys

    code = ("import sys; from methods.core.seeding import seed_everything; seed_everything(0); "
            "print('torch._inductor.config' in sys.modules, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
