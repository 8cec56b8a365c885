"""The target's HTTP requests for a scenario's arrivals: rendered, reproducible, on its trace.

:func:`target_plan` walks the very arrival trace the simulation draws
(:func:`lbsim.model.arrivals.arrival_trace`: same seed, same instants,
classes and clients; client addresses from the same
:class:`~lbsim.model.arrivals.ClientPopulation`) and renders each arrival's
class template. :class:`TargetClosedLoopPlan` does the same for a closed
workload, drawing think times and classes as the model's users do.

Placeholders are drawn from one stream per class (``target:<class>``) of the
scenario's :class:`~lbsim.model.streams.RandomStreams`, in arrival order: the
same seed and replication give the same ids and words. ``{uuid}`` is the one
exception by design: it is unique to the run (a hash of ``unique`` and the
request's index), so a replay repeated on the same stack never resends, say,
the same comment (WordPress refuses duplicates). Pass ``unique`` to make it
reproducible too.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import numpy as np

from lbsim.model.arrivals import ClientPopulation, arrival_trace
from lbsim.model.streams import RandomStreams
from lbsim.scenario.schema import Scenario
from lbsim.target.http import HttpRequest, TargetRequest
from lbsim.target.request_spec import RequestSpec
from lbsim.target.schema import TargetSpec
from lbsim.target.templates import Template, encode_path_literal, encode_path_value
from lbsim.validation.workplan import ClosedLoopPlan, MachineCosts

__all__ = [
    "HttpRequest",
    "MissingRequests",
    "RequestRenderer",
    "TargetClosedLoopPlan",
    "TargetRequest",
    "extra_requests",
    "missing_requests",
    "target_plan",
]

FORM_TYPE = "application/x-www-form-urlencoded"


class MissingRequests(ValueError):
    """The scenario has classes the target file gives no request for."""

    def __init__(self, missing: list[str]):
        super().__init__(
            f"the target file has no request for class{'es' if len(missing) > 1 else ''} "
            + ", ".join(missing)
            + " (add them under requests:)"
        )
        self.missing = missing


def missing_requests(scenario: Scenario, target: TargetSpec) -> list[str]:
    """The scenario's classes without a request in the target, in scenario order."""
    return [c for c in scenario.workload.class_names if c not in target.requests]


def extra_requests(scenario: Scenario, target: TargetSpec) -> list[str]:
    """The target's requests for classes the scenario does not have."""
    names = set(scenario.workload.class_names)
    return [c for c in target.requests if c not in names]


class _Compiled:
    """One class's templates with the headers merged and the path's literals encoded."""

    def __init__(self, target: TargetSpec, spec: RequestSpec):
        self.spec = spec
        self.files = {**target.files, **spec.files}
        merged: dict[str, tuple[str, Template]] = {
            name.lower(): (name, t) for name, t in target.header_templates
        }
        merged |= {name.lower(): (name, t) for name, t in spec.header_templates}
        if "host" not in merged:
            merged = {
                "host": ("Host", Template(target.host_header, (target.host_header,))),
                **merged,
            }
        if spec.form_templates is not None and "content-type" not in merged:
            merged["content-type"] = ("Content-Type", Template(FORM_TYPE, (FORM_TYPE,)))
        self.headers = tuple(merged.values())
        path = spec.path_template
        self.path = Template(
            path.text,
            tuple(encode_path_literal(p) if isinstance(p, str) else p for p in path.parts),
        )
        self.ids = spec.id_values
        self.id_range = spec.ids.range if spec.ids is not None else None
        self.words = spec.word_values
        names = spec.placeholders | frozenset(n for _, t in self.headers for n in t.names)
        self.uses = names


class RequestRenderer:
    """Renders each class's request for one run, drawing placeholders from seeded streams."""

    def __init__(self, target: TargetSpec, streams: RandomStreams, unique: str | None = None):
        self.target = target
        self.unique = unique if unique is not None else secrets.token_hex(8)
        self._classes = {name: _Compiled(target, spec) for name, spec in target.requests.items()}
        self._rng: dict[str, np.random.Generator] = {
            name: streams.generator(f"target:{name}") for name in target.requests
        }

    def uuid(self, index: int) -> str:
        """``{uuid}`` of request ``index``: unique to (this run, the request)."""
        digest = hashlib.blake2b(f"{self.unique}:{index}".encode(), digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    def values(self, cls_name: str, index: int, client: int) -> dict[str, str]:
        """Every placeholder's value for one request (``id`` before ``word`` when drawn)."""
        c = self._classes[cls_name]
        rng = self._rng[cls_name]
        out = {"n": str(index), "client": str(client), **c.files}
        if "uuid" in c.uses:
            out["uuid"] = self.uuid(index)
        if "id" in c.uses:
            if c.id_range is not None:
                out["id"] = str(int(rng.integers(c.id_range[0], c.id_range[1], endpoint=True)))
            else:
                assert c.ids is not None  # the schema refuses {id} without ids
                out["id"] = c.ids[int(rng.integers(len(c.ids)))]
        if "word" in c.uses:
            assert c.words is not None  # the schema refuses {word} without words
            out["word"] = c.words[int(rng.integers(len(c.words)))]
        return out

    def render(self, cls_name: str, index: int, client: int) -> HttpRequest:
        """Request ``index`` of class ``cls_name``, sent by ``client``."""
        c = self._classes[cls_name]
        values = self.values(cls_name, index, client)
        spec = c.spec
        body = b""
        if c.spec.form_templates is not None:
            form = [(k, t.render(values)) for k, t in c.spec.form_templates]
            body = urlencode(form).encode("ascii")
        elif spec.body_template is not None:
            body = spec.body_template.render(values).encode("utf-8")
        return HttpRequest(
            method=spec.method,
            path=c.path.render(values, encode=encode_path_value),
            headers=tuple((name, t.render(values)) for name, t in c.headers),
            body=body,
            expect=spec.expect,
        )


def target_plan(
    scenario: Scenario,
    target: TargetSpec,
    replication: int = 0,
    unique: str | None = None,
) -> Iterator[TargetRequest]:
    """The target's requests for ``scenario``'s open-loop (or trace-file) arrivals.

    :class:`MissingRequests` (before anything is drawn) when a class of the
    scenario has no request in the target.
    """
    missing = missing_requests(scenario, target)
    if missing:
        raise MissingRequests(missing)
    streams = RandomStreams(scenario.seed, replication)
    wl = scenario.workload
    clients = ClientPopulation(wl.clients, wl.class_names, streams)
    renderer = RequestRenderer(target, streams, unique)
    names = wl.class_names
    for index, (t, cls, client) in enumerate(arrival_trace(scenario, replication)):
        name = names[cls]
        yield TargetRequest(
            index=index,
            time=t,
            cls=cls,
            cls_name=name,
            client=client,
            address=".".join(map(str, clients.ip(client))),
            http=renderer.render(name, index, client),
        )


class TargetClosedLoopPlan:
    """A closed workload's users sending the target's requests: think times and
    classes drawn as :class:`lbsim.validation.workplan.ClosedLoopPlan` draws
    them (the model's streams), each request rendered from its class template."""

    def __init__(
        self,
        scenario: Scenario,
        target: TargetSpec,
        replication: int = 0,
        unique: str | None = None,
    ):
        missing = missing_requests(scenario, target)
        if missing:
            raise MissingRequests(missing)
        self._plan = ClosedLoopPlan(scenario, MachineCosts(), rows=1, replication=replication)
        self.users = self._plan.users
        self.horizon = self._plan.horizon
        self.renderer = RequestRenderer(target, RandomStreams(scenario.seed, replication), unique)

    def think(self) -> float:
        """The next think time (s)."""
        return self._plan.think()

    def request(self, user: int, t: float) -> TargetRequest:
        """User ``user``'s next request, due at ``t`` s from the start of the run."""
        item = self._plan.request(user, t)
        return TargetRequest(
            index=item.index,
            time=t,
            cls=item.cls,
            cls_name=item.cls_name,
            client=item.client,
            address=item.address,
            http=self.renderer.render(item.cls_name, item.index, item.client),
        )
