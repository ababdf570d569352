"""Config files -> validated, resolved job specs (one per benchmark x method x variant x replicate).

The same resolution serves the Snakefile and the command line (``python -m methods.core.job``), so a
job run by hand is the job the DAG runs. Every error is one line naming the offending key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from methods.core.seeding import data_seed, run_seed

PAIRED_SEED_NAME = "paired"  # the seed name of every variant in a block with ``paired_seeds: true``

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
RUNS_ROOT = "results/runs"
CACHE_ROOT = "results/cache"


class ConfigError(ValueError):
    """A config that cannot run; the message is one line and says what is allowed."""


@dataclass
class JobSpec:
    kind: str  # "run" (writes result rows) or "stage" (writes a shared artifact)
    scale: str
    method: str
    benchmark: str  # the benchmark instance id (the config key), e.g. "mqar" or "mqar_l128"
    benchmark_family: str  # the registered benchmark it instantiates, e.g. "mqar"
    name: str  # variant id or stage id
    family: str
    replicate: int
    seed: int
    data_seed: int
    args: dict[str, Any]
    data_args: dict[str, Any]
    after: str | None
    device: str
    dtype: str
    threads: int
    resources: dict[str, int]
    out: str
    inputs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls(**json.loads(text))

    def config_hash(self) -> str:
        """Hash of everything that determines the result (not where it is written)."""
        payload = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("out", "inputs", "threads",
                                                                                   "resources")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    config.update(overrides or {})
    validate_schema(config)
    return config


def validate_schema(config: dict[str, Any]) -> None:
    """JSON-schema check with defaults filled in, reported as one line naming the key."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(schema_error_line(errors[0]))
    _fill_defaults(config, schema)


def schema_error_line(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key '{'.'.join([*map(str, error.absolute_path), extra[0]])}' is not allowed; " \
               f"allowed here: {', '.join(allowed)}"
    return f"config key '{where}': {error.message}"


def _fill_defaults(config: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub and key not in config:
            config[key] = sub["default"]


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(value, hint) if isinstance(hint, type) else True


def build_args(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a typed args dataclass, rejecting unknown keys and wrong types with one line."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"config key '{where}.{key}' is not an argument here; allowed: {', '.join(names)}")
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"config key '{where}.{key}' should be {hints[key]}, got {value!r}")
    coerced = {k: (float(v) if hints[k] is float else v) for k, v in values.items()}
    return cls(**coerced)


def parse_only(only: str | list[str] | None) -> set[tuple[str, str | None]]:
    """``"cat"`` or ``"cat:mqar,cot2"`` -> {("cat", "mqar"), ("cot2", None)}."""
    if not only:
        return set()
    items = only if isinstance(only, list) else str(only).split(",")
    out = set()
    for item in items:
        method, _, bench = str(item).strip().partition(":")
        out.add((method, bench or None))
    return out


def _select(only: set[tuple[str, str | None]], method: str, benchmark: str) -> bool:
    return not only or (method, None) in only or (method, benchmark) in only


def resolve_jobs(config: dict[str, Any]) -> list[JobSpec]:
    """Expand the config into job specs, checking every name and argument against the registries."""
    from methods.registry import METHODS, UnknownName, get_benchmark, get_method

    only = parse_only(config.get("only"))
    for method_name, bench_name in only:
        if method_name not in config["methods"]:
            raise ConfigError(f"config key 'only': method '{method_name}' is not configured; "
                              f"configured: {', '.join(sorted(config['methods']))}")
        if bench_name and bench_name not in config["methods"][method_name]["benchmarks"]:
            raise ConfigError(f"config key 'only': benchmark '{bench_name}' is not configured for "
                              f"'{method_name}'")
    scale = config["scale"]
    jobs: list[JobSpec] = []
    for method_name, mcfg in config["methods"].items():
        if method_name not in METHODS:
            raise ConfigError(f"config key 'methods.{method_name}': unknown method '{method_name}'; "
                              f"known: {', '.join(sorted(METHODS))}")
        method = get_method(method_name)
        for bench_name, bcfg in mcfg["benchmarks"].items():
            where = f"methods.{method_name}.benchmarks.{bench_name}"
            bench_family = bcfg.get("benchmark", bench_name)
            if bench_family not in method.benchmarks:
                raise ConfigError(f"config key '{where}': method '{method_name}' does not run benchmark "
                                  f"'{bench_family}'; it runs: {', '.join(method.benchmarks)}")
            try:
                benchmark = get_benchmark(bench_family)
            except UnknownName as err:
                raise ConfigError(f"config key '{where}': {err}") from err
            data_args = build_args(benchmark.data_args, bcfg.get("data", {}), f"{where}.data")
            if not _select(only, method_name, bench_name):
                continue
            shared = {**mcfg.get("args", {}), **bcfg.get("args", {})}
            _check_shared(shared, [*method.families.values(), *method.stages.values()], f"{where}.args")
            stage_out: dict[tuple[str, int], str] = {}
            stage_specs = bcfg.get("stages", {})
            for kind, entries, families in (("stage", stage_specs, method.stages),
                                            ("run", bcfg["variants"], method.families)):
                if kind == "run":
                    entries = sweep_variants(entries, bcfg.get("sweep", {}), f"{where}.sweep")
                for name, entry in entries.items():
                    # paired_seeds: the variants share a seed name (common random numbers); stages keep theirs
                    seed_name = PAIRED_SEED_NAME if kind == "run" and bcfg.get("paired_seeds") else name
                    jobs += _expand(config, scale, method_name, bench_name, benchmark, data_args, kind,
                                    name, dict(entry or {}), families, shared, stage_specs, stage_out,
                                    f"{where}.{'stages' if kind == 'stage' else 'variants'}.{name}",
                                    mcfg.get("resources", {}), seed_name)
    return jobs


def sweep_suffix(key: str, value: Any) -> str:
    """An id-safe suffix for one swept argument: ``lr=0.001`` -> ``lr0p001``, ``d_model=64`` -> ``d_model64``."""
    text = format(value, "g") if isinstance(value, float) else str(value).lower()
    text = text.replace(".", "p").replace("-", "m").replace("+", "")
    if not re.fullmatch(r"[a-z0-9_]+", text):
        raise ConfigError(f"cannot name a sweep value {key}={value!r} in a variant id; sweep numbers or short words")
    return f"{key}{text}"


def sweep_variants(variants: dict[str, Any], sweep: dict[str, list[Any]], where: str) -> dict[str, Any]:
    """Expand every variant over the product of the swept values (zoology-style grids, one config line)."""
    if not sweep:
        return variants
    keys = list(sweep)
    out: dict[str, Any] = {}
    for name, entry in variants.items():
        entry = dict(entry or {})
        clash = [k for k in keys if k in entry]
        if clash:
            raise ConfigError(f"config key '{where}': variant '{name}' sets swept argument(s) {clash} itself")
        for values in itertools.product(*(sweep[k] for k in keys)):
            suffix = "_".join(sweep_suffix(k, v) for k, v in zip(keys, values, strict=True))
            out[f"{name}_{suffix}"] = {"family": name, **entry, **dict(zip(keys, values, strict=True))}
    return out


def _check_shared(shared: dict[str, Any], families: list[Any], where: str) -> None:
    known = set().union(*(typing.get_type_hints(f.args) for f in families)) if families else set()
    for key in shared:
        if key not in known:
            raise ConfigError(f"config key '{where}.{key}' is not an argument of any variant; "
                              f"allowed: {', '.join(sorted(known))}")


def _expand(config, scale, method_name, bench_name, benchmark, data_args, kind, name, entry, families,
            shared, stage_specs, stage_out, where, method_resources, seed_name) -> list[JobSpec]:
    family_name = entry.pop("family", name)
    after = entry.pop("after", None)
    if family_name not in families:
        what = "stage" if kind == "stage" else "variant family"
        raise ConfigError(f"config key '{where}': unknown {what} '{family_name}' for method "
                          f"'{method_name}'; known: {', '.join(sorted(families)) or 'none'}")
    if after is not None and (after not in stage_specs or (after, 0) not in stage_out):
        raise ConfigError(f"config key '{where}.after': no stage '{after}' configured; "
                          f"configured stages: {', '.join(sorted(stage_specs)) or 'none'} (a stage must be listed "
                          f"before the stages that start from it)")
    family = families[family_name]
    hints = typing.get_type_hints(family.args)
    merged = {k: v for k, v in shared.items() if k in hints}
    merged.update(entry)
    args = build_args(family.args, merged, where)
    resources = {**config["resources"], **method_resources}
    jobs = []
    for replicate in range(config["replicates"]):
        spec = JobSpec(
            kind=kind, scale=scale, method=method_name, benchmark=bench_name, benchmark_family=benchmark.name,
            name=name, family=family_name,
            replicate=replicate,
            seed=run_seed(config["seed"], bench_name, method_name, seed_name, replicate),
            data_seed=data_seed(config["seed"], bench_name, replicate),
            args=dataclasses.asdict(args), data_args=dataclasses.asdict(data_args), after=after,
            device=config["device"], dtype=config["dtype"], threads=config["threads"],
            resources=resources, out="",
        )
        if after is not None:
            spec.inputs = {after: stage_out[(after, replicate)]}
        if kind == "stage":
            spec.out = f"{CACHE_ROOT}/{scale}/{bench_name}/{method_name}/{name}/{spec.config_hash()}/seed{replicate}"
            stage_out[(name, replicate)] = spec.out
        else:
            spec.out = f"{RUNS_ROOT}/{scale}/{bench_name}/{method_name}/{name}/seed{replicate}"
        jobs.append(spec)
    return jobs
