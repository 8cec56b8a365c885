"""Live-stack tests: skip without Docker (or fail under LBSIM_REQUIRE_STACK=1), stacks per module.

CI sets ``LBSIM_REQUIRE_STACK=1`` after installing and starting Docker, so a
broken Docker there is a failure, not a silent skip; on a developer machine
without Docker the live tests skip with the reason.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

import lbsim
from lbsim.validation import StackOptions
from lbsim.validation.docker import Docker, DockerUnavailable, locate
from lbsim.validation.lifecycle import StackHandle, default_base_image, down, up

REQUIRE_ENV = "LBSIM_REQUIRE_STACK"


@functools.cache
def _probe() -> Docker | str:
    """Docker once per test session: the working commands, or why it is unavailable."""
    try:
        return locate()
    except DockerUnavailable as exc:
        return str(exc)


def require_docker() -> Docker:
    """Docker and compose, or skip the test (fail it when ``LBSIM_REQUIRE_STACK=1``)."""
    found = _probe()
    if isinstance(found, Docker):
        return found
    # `found` reads "Docker is not available: <why> — <what to do>"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {found}", pytrace=False)
    pytest.skip(f"{found}; set {REQUIRE_ENV}=1 to make this a failure")


def running_stack(
    scenario: Path,
    balancer: Literal["nginx", "haproxy"] = "nginx",
    port: int = 18080,
    timeout: float = 300.0,
) -> Callable[..., Any]:
    """A module-scoped fixture: the scenario's stack up (and ready) for the module, down after.

    The stack is started with :func:`default_base_image` and published on
    ``127.0.0.1:port`` (away from the 8080 a person may be using).
    """

    @pytest.fixture(scope="module")
    def _stack() -> Iterator[StackHandle]:
        require_docker()
        s = lbsim.load_scenario(scenario)
        opts = StackOptions(balancer=balancer, port=port, base_image=default_base_image())
        try:
            handle = up(s, opts, timeout)
            yield handle
        finally:
            down(s, opts)

    return _stack
