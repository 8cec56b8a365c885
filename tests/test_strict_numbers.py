"""Every numeric key of the schema is strict: a boolean (YAML ``yes``, ``on``,
``true``) or a string is never silently read as a number.

The walk covers the scenario, the database tier, every distribution and every
registered policy's options, so a key added later without a strict type fails
here rather than running ``rate: true`` as 1.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Strict

from lbsim.model.policies import POLICIES
from lbsim.scenario import loads_scenario
from lbsim.scenario.distributions import DIST_SPECS
from lbsim.scenario.errors import ScenarioError
from lbsim.scenario.schema import Scenario

pytestmark = pytest.mark.unit


def _numeric_leaves(tp: object, strict: bool, where: str) -> Iterator[tuple[str, bool]]:
    """(where, strict) for every int/float found inside annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        yield from _numeric_leaves(base, strict or any(isinstance(m, Strict) for m in meta), where)
    elif tp in (int, float):
        yield where, strict
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        return  # walked on its own
    elif origin is not None or isinstance(tp, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                yield from _numeric_leaves(arg, strict, where)


def _models(root: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    if root in seen:
        return
    seen.add(root)
    yield root
    for field in root.model_fields.values():
        for sub in _submodels(field.annotation):
            yield from _models(sub, seen)


def _submodels(tp: object) -> Iterator[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield tp
    for arg in typing.get_args(tp):
        yield from _submodels(arg)


def _all_models() -> list[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    roots: list[type[BaseModel]] = [Scenario, *DIST_SPECS.values()]
    roots += [cls.Options for cls in POLICIES.values()]
    return [m for r in roots for m in _models(r, seen)]


def test_the_walk_finds_the_schema() -> None:
    names = {m.__name__ for m in _all_models()}
    assert {"Scenario", "OpenLoop", "App", "Balancer"} <= names
    assert len(names) > 25


def test_every_numeric_key_is_strict() -> None:
    loose = []
    for model in _all_models():
        for name, field in model.model_fields.items():
            strict = any(isinstance(m, Strict) for m in field.metadata)
            for where, ok in _numeric_leaves(field.annotation, strict, f"{model.__name__}.{name}"):
                if not ok:
                    loose.append(where)
    assert not loose, f"numeric keys that accept booleans or strings: {sorted(set(loose))}"


BASE = "workload: {open: {rate: 5}, classes: [{name: a, cpu: 0.01}]}\n"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("workload: {open: {rate: true}, classes: [{name: a, cpu: 0.01}]}", "workload.open.rate"),
        ("workload: {open: {rate: yes}, classes: [{name: a, cpu: 0.01}]}", "workload.open.rate"),
        ('workload: {open: {rate: "5"}, classes: [{name: a, cpu: 0.01}]}', "workload.open.rate"),
        (BASE + "app: {workers: true}", "app.workers"),
        (BASE + "app: {workers: on}", "app.workers"),
        (BASE + "app: {workers: 2.5}", "app.workers"),
        (BASE + "seed: yes", "seed"),
        (BASE + "seed: off", "seed"),
        (BASE + "duration: no", "duration"),
        (BASE + "app: {cores: true}", "app.cores"),
        (BASE + "balancer: {max_fails: true}", "balancer.max_fails"),
        (BASE + "database: {engine: galera, nodes: true}", "database.nodes"),
        (
            "workload: {open: {rate: 5}, clients: {count: yes}, classes: [{name: a, cpu: 0.01}]}",
            "workload.clients.count",
        ),
        (BASE + "report: {percentile_error: true}", "report.percentile_error"),
        (
            "workload: {open: {rate: 5}, "
            "classes: [{name: a, cpu: {dist: exponential, mean: true}}]}",
            "workload.classes[0].cpu.mean",
        ),
        (BASE + "balancer: {policy: power_of_d, policy_options: {choices: true}}", "choices"),
    ],
)
def test_a_boolean_or_string_is_not_a_number(text: str, key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads_scenario(text, "s.yaml")
    message = str(info.value)
    assert key in message, message
    assert "s.yaml:" in message


def test_numbers_written_as_yaml_floats_are_numbers() -> None:
    """YAML 1.1 reads ``1e3`` as a string; lbsim reads it as YAML 1.2 does, a number."""
    s = loads_scenario(BASE + "duration: 1e3\nwarmup: 2.5E+1\n", "s.yaml")
    assert s.duration == 1000.0
    assert s.warmup == 25.0
