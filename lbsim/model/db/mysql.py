"""A single MySQL/MariaDB server: a write commits with a log flush, no replication."""

from __future__ import annotations

from collections.abc import Mapping

import simpy

from lbsim.model.cpu import Host
from lbsim.model.db.routing import Router
from lbsim.model.db.server import DbServer
from lbsim.model.db.tier import DatabaseTierBase, Statement
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema
from lbsim.scenario.database import MySQL


class MySQLTier(DatabaseTierBase):
    def __init__(
        self,
        env: simpy.Environment,
        scenario: schema.Scenario,
        spec: MySQL,
        streams: RandomStreams,
        hosts: Mapping[str, Host] | None = None,
    ):
        host = hosts[spec.host] if hosts is not None and spec.host is not None else None
        server = DbServer(
            env, 0, "db1", spec.cores, spec.max_connections, spec.threads, host=host,
            cpu_period=spec.cpu_period,
        )  # fmt: skip
        super().__init__(
            env,
            scenario,
            spec,
            [server],
            Router([server], None, streams.generator("db-routing")),
            streams,
        )

    def commit(self, st: Statement) -> None:
        self.finish_commit(st)
