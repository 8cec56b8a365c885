"""A request as it travels client → balancer → app node (→ database) → client."""

from __future__ import annotations

from typing import Any


class Request:
    """One HTTP request. Times are simulated seconds.

    ``phases`` is the work the PHP worker does, in order: a float is a CPU
    burst (core-seconds), an int ``i`` is query ``i`` of the class.
    """

    __slots__ = (
        "answered",
        "attempt",
        "backend",
        "client",
        "client_ip",
        "cls",
        "cpu",
        "db",
        "first_try",
        "id",
        "job",
        "measured",
        "node",
        "on_answer",
        "origin",
        "phase",
        "phases",
        "queued_at",
        "retried",
        "sent_to_backend",
        "t_arrival",
        "tried",
        "tries",
        "upstream_done",
        "worker",
        "worker_token",
    )

    def __init__(
        self,
        rid: int,
        cls: int,
        client: int,
        client_ip: tuple[int, int, int, int],
        t_arrival: float,
        cpu: float,
        phases: tuple[Any, ...],
        measured: bool,
    ):
        self.id = rid
        self.cls = cls
        self.client = client
        self.client_ip = client_ip
        self.t_arrival = t_arrival
        self.cpu = cpu
        self.phases = phases
        self.measured = measured
        self.answered = False  # the client has its answer (or gave up)
        self.on_answer: Any = None  # closed-loop user waiting for this request
        self.attempt = 0  # balancer attempts so far (each try of an upstream)
        self.tries = 0
        self.tried: int = 0  # bitmask of backend indices already tried
        self.first_try = 0.0  # when the balancer sent the first try (next_upstream_timeout)
        self.retried = 0  # HAProxy / Envoy retries so far
        self.backend: Any = None
        self.sent_to_backend = 0.0
        self.upstream_done = True
        self.queued_at = 0.0
        self.node: Any = None
        self.phase = 0
        self.worker_token = 0
        self.worker = -1  # which PHP worker of its node runs it
        self.job: Any = None  # the CPU job running now, if any
        self.db: Any = None  # the database session (connections) of this request
        #: the request a node answers for: itself, or for a :class:`Try` its request
        self.origin = self


class Try:
    """A try of ``origin`` on a node while an earlier try of it still runs there or
    elsewhere: after a per-try timeout the balancer retries, and the worker that
    took the first try goes on with it (php-fpm does not notice that the balancer
    closed the connection until it writes). The new try gets its own node state
    (worker, phase, CPU job, database session); the node answers for ``origin``.
    A request's first try, and any try that finds no other running, is the
    :class:`Request` itself."""

    __slots__ = (
        "client",
        "cls",
        "db",
        "job",
        "node",
        "origin",
        "phase",
        "phases",
        "worker",
        "worker_token",
    )

    def __init__(self, origin: Request):
        self.origin = origin
        self.cls = origin.cls
        self.client = origin.client
        self.phases = origin.phases
        self.node: Any = None
        self.phase = 0
        self.worker_token = 0
        self.worker = -1
        self.job: Any = None
        self.db: Any = None


#: what a PHP worker runs and the database serves: a request's try
Work = Request | Try
