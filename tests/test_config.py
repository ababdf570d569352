import pytest

from methods.core.config import ConfigError, parse_only, resolve_jobs, validate_schema


def resolve(config):
    validate_schema(config)
    return resolve_jobs(config)


def test_grid_is_one_job_per_variant_and_replicate(tiny_config):
    jobs = resolve(tiny_config)
    assert len(jobs) == 2 * 2
    assert {j.out for j in jobs} == {f"results/runs/tiny/mqar/cat/{v}/seed{r}"
                                     for v in ("attention_1l", "cat_1l") for r in (0, 1)}
    assert len({j.seed for j in jobs}) == 4
    assert len({j.data_seed for j in jobs}) == 2  # same data for every variant of a replicate


def test_misspelled_top_level_key_names_it(tiny_config):
    tiny_config["replicatez"] = 3
    with pytest.raises(ConfigError, match="'replicatez' is not allowed"):
        resolve(tiny_config)


def test_unknown_method_lists_the_known_ones(tiny_config):
    tiny_config["methods"]["kat"] = tiny_config["methods"].pop("cat")
    with pytest.raises(ConfigError, match="unknown method 'kat'; known: .*cat"):
        resolve(tiny_config)


def test_unknown_variant_family_and_argument_are_named(tiny_config):
    variants = tiny_config["methods"]["cat"]["benchmarks"]["mqar"]["variants"]
    variants["cat_1l"]["family"] = "kat"
    with pytest.raises(ConfigError, match="unknown variant family 'kat'"):
        resolve(tiny_config)
    variants["cat_1l"] = {"family": "cat", "n_layerz": 1}
    with pytest.raises(ConfigError, match="n_layerz' is not an argument"):
        resolve(tiny_config)


def test_wrong_argument_type_is_rejected(tiny_config):
    tiny_config["methods"]["cat"]["benchmarks"]["mqar"]["args"]["steps"] = "many"
    with pytest.raises(ConfigError, match="steps' should be"):
        resolve(tiny_config)


def test_unknown_benchmark_data_argument_is_rejected(tiny_config):
    tiny_config["methods"]["cat"]["benchmarks"]["mqar"]["data"]["seq_length"] = 9
    with pytest.raises(ConfigError, match="data.seq_length"):
        resolve(tiny_config)


def test_only_restricts_the_grid(tiny_config):
    assert parse_only("cat:mqar,cot2") == {("cat", "mqar"), ("cot2", None)}
    tiny_config["only"] = "cat:mqar"
    assert len(resolve(tiny_config)) == 4
    tiny_config["only"] = "cot3"
    with pytest.raises(ConfigError, match="'cot3' is not configured"):
        resolve(tiny_config)


def test_benchmark_instances_share_a_registered_benchmark(tiny_config):
    bench = tiny_config["methods"]["cat"]["benchmarks"]
    bench["mqar_long"] = {**bench["mqar"], "benchmark": "mqar"}
    jobs = resolve(tiny_config)
    assert {j.benchmark for j in jobs} == {"mqar", "mqar_long"}
    assert {j.benchmark_family for j in jobs} == {"mqar"}


def test_stage_reference_must_exist(tiny_config):
    tiny_config["methods"]["cat"]["benchmarks"]["mqar"]["variants"]["cat_1l"]["after"] = "pretrain"
    with pytest.raises(ConfigError, match="no stage 'pretrain'"):
        resolve(tiny_config)


def test_sweep_expands_every_variant_over_the_grid(tiny_config):
    bench = tiny_config["methods"]["cat"]["benchmarks"]["mqar"]
    bench["sweep"] = {"d_model": [16, 32], "lr": [1.0e-3, 3.0e-4]}
    jobs = resolve(tiny_config)
    names = {j.name for j in jobs}
    assert len(names) == 2 * 4 and "cat_1l_d_model32_lr0p0003" in names
    job = next(j for j in jobs if j.name == "cat_1l_d_model32_lr0p0003")
    assert (job.family, job.args["d_model"], job.args["lr"]) == ("cat", 32, 3.0e-4)


def test_sweep_of_an_unknown_argument_is_named(tiny_config):
    tiny_config["methods"]["cat"]["benchmarks"]["mqar"]["sweep"] = {"widht": [16]}
    with pytest.raises(ConfigError, match="widht"):
        resolve(tiny_config)


def test_paired_seeds_give_every_variant_of_a_replicate_one_seed(tiny_config):
    bench = tiny_config["methods"]["cat"]["benchmarks"]["mqar"]
    unpaired = {(j.name, j.replicate): j.seed for j in resolve(tiny_config)}
    bench["paired_seeds"] = True
    jobs = resolve(tiny_config)
    seeds = {(j.name, j.replicate): j.seed for j in jobs}
    for r in (0, 1):  # common random numbers within a replicate, fresh draws across replicates
        assert seeds[("attention_1l", r)] == seeds[("cat_1l", r)]
    assert seeds[("cat_1l", 0)] != seeds[("cat_1l", 1)]
    assert set(seeds.values()).isdisjoint(unpaired.values())  # a seed name of its own, not a variant's
    assert {j.data_seed for j in jobs} == {j.data_seed for j in resolve(tiny_config)}
    bench["paired_seeds"] = "yes"
    with pytest.raises(ConfigError, match="paired_seeds"):
        resolve(tiny_config)
