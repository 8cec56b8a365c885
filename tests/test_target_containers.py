"""Attaching to the user's containers (lbsim.target.containers) with a fake
docker: container resolution, every refusal, compose.start, credentials, and
the parsers of what the containers say (CPU limits, php-fpm pools, wsrep)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lbsim.target.containers import TargetError, attach, probe_url
from lbsim.target.handle import TargetHandle, docker_runner
from lbsim.target.inspection import (
    AppReading,
    DbReading,
    cfs_period,
    cpu_limit,
    db_reading,
    fpm_reading_from,
    parse_cpuset,
    parse_fpm_dump,
    parse_pool_files,
    pool_workers,
    shape_notes,
)
from lbsim.target.loader import target_from_data
from lbsim.target.schema import TargetSpec
from lbsim.validation import collectors
from lbsim.validation.docker import Docker, StackError

pytestmark = pytest.mark.unit

DOCKER = Docker("docker", ("docker", "compose"))
Proc = subprocess.CompletedProcess[str]


def _proc(argv: Sequence[str], rc: int = 0, out: str = "", err: str = "") -> Proc:
    return subprocess.CompletedProcess(list(argv), rc, out, err)


FPM_TT = """\
# /usr/sbin/php-fpm8.2
[06-Dec-2026 14:00:00] NOTICE: [global]
[06-Dec-2026 14:00:00] NOTICE: \tpid = /run/php/php8.2-fpm.pid
[06-Dec-2026 14:00:00] NOTICE: \terror_log = /proc/self/fd/2
[06-Dec-2026 14:00:00] NOTICE: [www]
[06-Dec-2026 14:00:00] NOTICE: \tprefix = undefined
[06-Dec-2026 14:00:00] NOTICE: \tuser = www-data
[06-Dec-2026 14:00:00] NOTICE: \tlisten = 9000
[06-Dec-2026 14:00:00] NOTICE: \tpm = dynamic
[06-Dec-2026 14:00:00] NOTICE: \tpm.max_children = 12
[06-Dec-2026 14:00:00] NOTICE: \tpm.start_servers = 2
[06-Dec-2026 14:00:00] NOTICE: \tpm.status_path = /status
[06-Dec-2026 14:00:00] NOTICE: \t
[06-Dec-2026 14:00:00] NOTICE: configuration file /etc/php/8.2/fpm/php-fpm.conf test is successful
"""

FPM_STATUS_JSON = (
    "X-Powered-By: PHP/8.2\r\nContent-type: application/json\r\n\r\n"
    '{"pool":"www","process manager":"dynamic","start time":1,"start since":20,'
    '"accepted conn":5,"listen queue":0,"max listen queue":0,"listen queue len":0,'
    '"idle processes":1,"active processes":1,"total processes":2,'
    '"max active processes":1,"max children reached":0,"slow requests":0}'
)

GALERA_VARS = "max_connections\t151\nwsrep_on\tON\n"
GALERA_STATUS = "wsrep_cluster_size\t1\nwsrep_local_state_comment\tSynced\n"


class FakeDocker:
    """Answers the docker and compose commands lbsim runs, from a table of
    containers; every call is kept (argv, env) to check what was (not) run."""

    def __init__(self, containers: list[tuple[str, str, str]], project: str = "wp"):
        self.project = project
        self.containers = containers  # (id, service, state)
        self.host_configs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.sql: Callable[[str, str, Mapping[str, str]], Proc] = self._sql
        self.fpm: Callable[[str, list[str]], Proc] = lambda cid, argv: _proc(
            argv, out=FPM_STATUS_JSON
        )
        self.dump: Callable[[str], Proc] = lambda cid: _proc([], out=FPM_TT)
        self.on_up: Callable[[], None] = self._all_running
        self.ncpu = "16"

    def _all_running(self) -> None:
        self.containers = [(c, s, "running") for c, s, _ in self.containers]

    def _sql(self, cid: str, sql: str, env: Mapping[str, str]) -> Proc:
        if sql == "SELECT 1":
            return _proc([], out="1\n")
        if "VARIABLES" in sql:
            return _proc([], out=GALERA_VARS)
        return _proc([], out=GALERA_STATUS)

    def commands(self) -> list[str]:
        """Each call's docker subcommand (``compose up`` for compose)."""
        out = []
        for argv, _ in self.calls:
            out.append(" ".join(argv[1:4]) if argv[1] == "compose" else argv[1])
        return out

    def __call__(
        self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> Proc:
        argv = list(argv)
        self.calls.append((argv, dict(env or {})))
        assert timeout > 0
        cmd = argv[1]
        if cmd == "ps":
            assert f"label=com.docker.compose.project={self.project}" in argv
            lines = [f"{c}\t{s}\t{st}" for c, s, st in self.containers]
            return _proc(argv, out="\n".join(lines) + "\n")
        if cmd == "inspect":
            infos = []
            for cid in argv[2:]:
                state = next(st for c, _, st in self.containers if c == cid)
                infos.append(
                    {
                        "Id": cid,
                        "State": {"Status": state},
                        "HostConfig": self.host_configs.get(cid, {}),
                    }
                )
            return _proc(argv, out=json.dumps(infos))
        if cmd == "info":
            return _proc(argv, out=self.ncpu + "\n")
        if cmd == "logs":
            return _proc(argv, out="line 1\nline 2\n", err="warn\n")
        if cmd == "compose":
            if "up" in argv:
                self.on_up()
            return _proc(argv)
        if cmd == "exec":
            rest = argv[2:]
            while rest[0] == "-e":
                rest = rest[2:]
            cid, inner = rest[0], rest[1:]
            if inner[0] in ("mariadb", "mysql"):
                return self.sql(cid, inner[-1], env or {})
            if inner[0] == "env":
                return self.fpm(cid, inner)
            if inner[:2] == ["sh", "-c"] and "-tt" in inner[2]:
                return self.dump(cid)
            if inner[:2] == ["sh", "-c"]:
                return _proc(argv, out="")
            return _proc(argv, out="")
        raise AssertionError(f"unexpected command {argv}")


RUNNING = [
    ("a" * 64, "lb", "running"),
    ("b" * 64, "app1", "running"),
    ("c" * 64, "app2", "running"),
    ("d" * 64, "db", "running"),
]


def _target(tmp_path: Path | None = None, **changes: Any) -> TargetSpec:
    data: dict[str, Any] = {
        "target": "wordpress",
        "compose": {"project": "wp"},
        "services": {"balancer": "lb", "app": ["app1", "app2"], "database": "db"},
        "url": "http://127.0.0.1:18200",
        "requests": {"front": {"path": "/"}},
        "database": {"engine": "galera", "user": "wp", "password": "s3cret"},
        "fpm_status": "/status",
    }
    data.update(changes)
    return target_from_data(data, "wp.yaml", base_dir=tmp_path)


def _attach(
    fake: FakeDocker, target: TargetSpec | None = None, probe: str | None = None, **kw: Any
) -> TargetHandle:
    return attach(
        target or _target(), "wp.yaml", docker=DOCKER, runner=fake, probe=lambda url, t: probe, **kw
    )


def _refused(fake: FakeDocker, target: TargetSpec | None = None, probe: str | None = None) -> str:
    with pytest.raises(TargetError) as err:
        _attach(fake, target, probe)
    return str(err.value)


CHANGING = ("up", "start", "stop", "restart", "rm", "kill", "down", "pause", "create", "run")


def _changed_nothing(fake: FakeDocker) -> None:
    for argv, _ in fake.calls:
        if argv[1] == "compose":
            raise AssertionError(f"ran compose: {argv}")
        assert argv[1] not in CHANGING, argv


# ---------------------------------------------------------------- resolution
def test_every_service_resolves_to_its_running_container() -> None:
    fake = FakeDocker([*RUNNING, ("e" * 64, "cron", "running"), ("f" * 64, "old", "exited")])
    handle = _attach(fake)
    assert handle.containers == {"lb": "a" * 64, "app1": "b" * 64, "app2": "c" * 64, "db": "d" * 64}
    assert handle.services == ["lb", "app1", "app2", "db"]
    assert handle.app_nodes == ["app1", "app2"] and handle.db_nodes == ["db"]
    assert handle.container_id("app2") == "c" * 64
    assert handle.url == "http://127.0.0.1:18200/" and handle.project == "wp"
    assert handle.meta["db_engine"] == "galera" and handle.meta["app_nodes"] == ["app1", "app2"]
    assert handle.started is False
    with pytest.raises(StackError, match="not one the target 'wordpress' names"):
        handle.container_id("cron")
    _changed_nothing(fake)
    handle.stop()  # lbsim did not start it: stopping does nothing
    _changed_nothing(fake)


def test_a_service_without_a_running_container_is_named_with_what_runs() -> None:
    fake = FakeDocker([RUNNING[0], RUNNING[1], ("c" * 64, "app2", "exited"), RUNNING[3]])
    msg = _refused(fake)
    assert (
        "wp.yaml: services.app[1]: service 'app2' of compose project 'wp' has no running "
        "container (its container is exited)"
    ) in msg
    assert "the project's running services: app1, db, lb" in msg
    fake = FakeDocker(RUNNING[:3])
    msg = _refused(fake)
    assert "services.database[0]: service 'db'" in msg and "(no such service)" in msg
    _changed_nothing(fake)


def test_a_project_without_containers_says_how_to_start_it() -> None:
    msg = _refused(FakeDocker([]))
    assert "compose.project: compose project 'wp' has no containers" in msg
    assert "docker compose -p wp ps" in msg and "compose.start: true" in msg


def test_a_scaled_service_is_refused() -> None:
    fake = FakeDocker([*RUNNING, ("9" * 64, "app1", "running")])
    msg = _refused(fake)
    assert "services.app[0]: service 'app1' runs 2 containers (scaled)" in msg


def test_a_url_that_does_not_answer_is_named() -> None:
    msg = _refused(FakeDocker(RUNNING), probe="connection refused (nothing listens on that port)")
    assert "wp.yaml: url: http://127.0.0.1:18200/ does not answer: connection refused" in msg


# ---------------------------------------------------------------- the database
def test_sql_runs_with_the_password_in_the_environment_only() -> None:
    fake = FakeDocker(RUNNING)
    handle = _attach(fake)
    fake.calls.clear()
    status = collectors.global_status(handle, "db", like=("wsrep_cluster_size",))
    assert status == {"wsrep_cluster_size": "1", "wsrep_local_state_comment": "Synced"}
    (argv, env), *_ = fake.calls
    assert argv[:5] == ["docker", "exec", "-e", "MYSQL_PWD", "d" * 64]
    assert argv[5:11] == ["mariadb", "-u", "wp", "-N", "-B", "-e"]
    assert env == {"MYSQL_PWD": "s3cret"}
    assert not any("s3cret" in a for a, _ in fake.calls for a in a)


def test_socket_access_passes_no_password() -> None:
    fake = FakeDocker(RUNNING)
    handle = _attach(fake, _target(database={"engine": "mysql", "client": "mysql"}))
    fake.calls.clear()
    handle.mysql("db", "SELECT 2")
    (argv, env), *_ = fake.calls
    assert argv == ["docker", "exec", "d" * 64, "mysql", "-u", "root", "-N", "-B", "-e", "SELECT 2"]
    assert env == {}


def test_credentials_that_do_not_work_are_named() -> None:
    fake = FakeDocker(RUNNING)
    denied = "ERROR 1045 (28000): Access denied for user 'wp'@'localhost' (using password: YES)"
    fake.sql = lambda cid, sql, env: _proc([], 1, "", denied + "\n")
    msg = _refused(fake)
    assert (
        "wp.yaml: database: the credentials do not work on db: user 'wp' with "
        "database.password: ERROR 1045 (28000): Access denied"
    ) in msg
    assert "s3cret" not in msg


def test_a_missing_client_program_is_named() -> None:
    fake = FakeDocker(RUNNING)
    oci = (
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"mariadb": executable file not found in $PATH: unknown'
    )
    fake.sql = lambda cid, sql, env: _proc([], 127, "", oci)
    msg = _refused(fake)
    assert "database.client: db's container has no `mariadb` program" in msg
    assert "set database.client: mysql" in msg


# ---------------------------------------------------------------- php-fpm status
def test_php_fpm_status_that_does_not_answer_is_named() -> None:
    fake = FakeDocker(RUNNING)
    fake.fpm = lambda cid, argv: _proc(
        argv, out="Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nFile not found.\n"
    )
    msg = _refused(fake)
    assert "wp.yaml: fpm_status: /status does not answer in app1 (php-fpm at 127.0.0.1:9000)" in msg
    assert "pm.status_path = /status" in msg
    fake.fpm = lambda cid, argv: _proc(argv, 1, "", "Could not connect to 127.0.0.1:9000")
    assert "Could not connect to 127.0.0.1:9000" in _refused(fake)


def test_php_fpm_status_is_read_where_the_target_says() -> None:
    fake = FakeDocker(RUNNING)
    seen: list[list[str]] = []

    def fpm(cid: str, argv: list[str]) -> Proc:
        seen.append(argv)
        return _proc(argv, out=FPM_STATUS_JSON)

    fake.fpm = fpm
    handle = _attach(fake, _target(fpm_status="/fpm-status", fpm_listen="/run/php/fpm.sock"))
    assert len(seen) == 2  # each app node checked
    assert seen[0] == [
        "env",
        "SCRIPT_NAME=/fpm-status",
        "SCRIPT_FILENAME=/fpm-status",
        "REQUEST_METHOD=GET",
        "QUERY_STRING=json",
        "cgi-fcgi",
        "-bind",
        "-connect",
        "/run/php/fpm.sock",
    ]
    status = collectors.fpm_status(handle, "app2")
    assert status.total_processes == 2 and status.accepted_conn == 5


def test_no_cgi_fcgi_is_a_note_not_a_refusal() -> None:
    fake = FakeDocker(RUNNING)
    fake.fpm = lambda cid, argv: _proc(argv, 127, "", "env: 'cgi-fcgi': No such file or directory")
    handle = _attach(fake)
    assert handle.notes == [
        "app1: no cgi-fcgi in the container: php-fpm status not read there",
        "app2: no cgi-fcgi in the container: php-fpm status not read there",
    ]


# ---------------------------------------------------------------- compose.start
def _startable(tmp_path: Path, timeout: float = 300) -> TargetSpec:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    compose = {"project": "wp", "file": "docker-compose.yml", "start": True}
    return _target(tmp_path, compose={**compose, "start_timeout": timeout})


def test_start_true_starts_a_stopped_project_and_stops_it_again(tmp_path: Path) -> None:
    fake = FakeDocker([(c, s, "exited") for c, s, _ in RUNNING])
    target = _startable(tmp_path)
    with _attach(fake, target, sleep=lambda s: None) as handle:
        assert handle.started and handle.meta["started_by_lbsim"]
        up = [a for a, _ in fake.calls if a[1] == "compose"]
        assert up == [
            [
                "docker",
                "compose",
                "-f",
                str(tmp_path / "docker-compose.yml"),
                "-p",
                "wp",
                "up",
                "-d",
            ]
        ]
    stop = [a for a, _ in fake.calls if a[1] == "compose"][-1]
    assert stop[-1] == "stop"  # stop keeps the containers and their data (not down)


def test_start_true_leaves_a_running_project_alone(tmp_path: Path) -> None:
    fake = FakeDocker(RUNNING)
    handle = _attach(fake, _startable(tmp_path))
    assert not handle.started
    handle.stop()
    _changed_nothing(fake)


def test_a_started_project_that_never_serves_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = FakeDocker([(c, s, "exited") for c, s, _ in RUNNING])
    fake.on_up = lambda: None  # app2 never comes up
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(TargetError) as err:
        _attach(fake, _startable(tmp_path, timeout=5), clock=lambda: now[0], sleep=sleep)
    msg = str(err.value)
    assert "compose.start: lbsim started project 'wp', but after 5 s lb is exited" in msg
    assert "last 30 lines of lb's log:\nline 1\nline 2" in msg
    assert now[0] <= 6  # bounded: the wait stopped at its timeout


def test_a_failed_compose_up_is_reported(tmp_path: Path) -> None:
    fake = FakeDocker([])

    def up(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> Proc:
        if argv[1] == "compose":
            return _proc(argv, 1, "", "no such image: wordpress:99\n")
        return fake(argv, timeout, env)

    with pytest.raises(TargetError, match=r"compose.start: .* failed:\nno such image"):
        attach(_startable(tmp_path), "wp.yaml", docker=DOCKER, runner=up, probe=lambda u, t: None)


# ---------------------------------------------------------------- shapes
def test_cpu_limits_from_inspect() -> None:
    assert cpu_limit({"NanoCpus": 1_500_000_000}) == (1.5, "cpus (NanoCpus)")
    assert cpu_limit({"CpuQuota": 50_000, "CpuPeriod": 100_000}) == (0.5, "cpu quota 50000/100000")
    assert cpu_limit({"CpuQuota": 200_000, "CpuPeriod": 0})[0] == 2.0  # the default period
    assert cpu_limit({"CpusetCpus": "0-3,6"}) == (5.0, "cpuset 0-3,6")
    assert cpu_limit({"NanoCpus": 4_000_000_000, "CpusetCpus": "0,1"}) == (2.0, "cpuset 0,1")
    assert cpu_limit({"NanoCpus": 0, "CpuQuota": -1, "CpusetCpus": ""}) == (None, "no CPU limit")
    assert cpu_limit({}) == (None, "no CPU limit")
    assert parse_cpuset("0-7") == 8 and parse_cpuset("3") == 1 and parse_cpuset("0-1,4-5") == 4
    with pytest.raises(ValueError):
        parse_cpuset("5-2")


def test_max_children_from_php_fpm_tt() -> None:
    pools = parse_fpm_dump(FPM_TT)
    assert pools["www"]["pm.max_children"] == "12" and pools["global"]["pid"].endswith(".pid")
    assert "configuration file" not in str(pools)
    assert fpm_reading_from(FPM_TT, None, "127.0.0.1:9000") == (
        12,
        "/usr/sbin/php-fpm8.2 -tt, pool www",
    )
    # without timestamps (php-fpm logging to a terminal-less stderr)
    bare = "NOTICE: [www]\nNOTICE: \tpm.max_children = 7\n"
    assert fpm_reading_from(bare, None, "127.0.0.1:9000") == (7, "php-fpm -tt, pool www")


def test_max_children_from_pool_files_and_several_pools() -> None:
    files = """\
[www]
user = www-data
listen = 127.0.0.1:9000
pm = dynamic
pm.max_children = 5 ; the default
;pm.max_children = 50
[www]
pm.max_children = 20
[admin]
listen = /run/php/admin.sock
pm.max_children = 3
"""
    pools = parse_pool_files(files)
    assert pools["www"]["pm.max_children"] == "20"  # the later file wins
    assert fpm_reading_from(None, files, "127.0.0.1:9000") == (20, "pool files, pool www")
    assert pool_workers(pools, "/run/php/admin.sock") == (3, "pool admin")
    # no pool listens where lbsim was told: the sum, said so
    assert pool_workers(pools, "127.0.0.1:9999") == (23, "the sum over pools www (20), admin (3)")
    workers, why = fpm_reading_from(None, "", "127.0.0.1:9000")
    assert workers is None and "pm.max_children not read" in why


def test_database_readings_and_notes() -> None:
    r = db_reading("db1", (2.0, "cpus"), GALERA_VARS, "wsrep_cluster_size\t2\n")
    assert r == DbReading("db1", 2.0, "cpus", 151, True, 2, "")
    off = db_reading("db2", (None, "no CPU limit"), "max_connections\t100\nwsrep_on\tOFF\n", "")
    assert off.wsrep_on is False and off.cluster_size is None
    app = [AppReading("app1", None, "no CPU limit", None, "pm.max_children not read: x")]
    notes = shape_notes("galera", app, [r, off], 8.0)
    assert "app1: no CPU limit (it may use all 8 cores)" in notes
    assert "app1: pm.max_children not read: x" in notes
    assert "db2: database.engine is galera but wsrep_on is OFF" in notes
    assert shape_notes("mysql", [], [r], 8.0) == [
        "db1: wsrep_on is ON (a Galera node) but database.engine is mysql"
    ]


def test_topology_from_the_containers() -> None:
    fake = FakeDocker(RUNNING)
    fake.host_configs = {"b" * 64: {"NanoCpus": 1_500_000_000}, "d" * 64: {"CpusetCpus": "0-1"}}
    handle = _attach(fake)
    readings = handle.readings()
    assert [(a.service, a.cores, a.workers) for a in readings.app] == [
        ("app1", 1.5, 12),
        ("app2", None, 12),
    ]
    assert readings.db[0].max_connections == 151 and readings.db[0].wsrep_on
    assert readings.host_cores == 16
    assert readings.notes == ["app2: no CPU limit (it may use all 16 cores)"]
    topo = handle.topology()
    assert [(s.name, s.cores, s.workers) for s in topo.app] == [
        ("app1", 1.5, 12),
        ("app2", None, 12),
    ]
    assert [(s.name, s.cores, s.max_connections) for s in topo.db] == [("db", 2.0, 151)]
    assert topo.host_cores == 16
    _changed_nothing(fake)


def test_a_pool_size_that_cannot_be_read_says_why() -> None:
    fake = FakeDocker(RUNNING)
    fake.dump = lambda cid: _proc([], 127, "", "")
    app = _attach(fake).read_app("app1")
    assert app.workers is None and "no php-fpm binary answered -tt" in app.workers_source


def test_logs_tail_never_raises() -> None:
    fake = FakeDocker(RUNNING)
    handle = _attach(fake)
    assert handle.logs_tail("app1", 2) == "line 2\nwarn"
    assert handle.logs_tail("nope") == "(no container for nope)"

    def broken(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> Proc:
        raise StackError("docker is gone")

    handle.runner = broken
    assert handle.logs_tail("app1") == "(no log: docker is gone)"


# ---------------------------------------------------------------- the real pieces
def test_the_runner_passes_the_environment_without_a_command_line() -> None:
    proc = docker_runner(["sh", "-c", 'printf %s "$MYSQL_PWD"'], 30, {"MYSQL_PWD": "pw x"})
    assert proc.returncode == 0 and proc.stdout == "pw x"


def test_the_url_probe_names_a_refused_port() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        why = probe_url(f"http://127.0.0.1:{port}/", 5)
    assert why is not None and "connection refused" in why


def test_a_cpu_limit_under_one_core_is_noted() -> None:
    """Docker's --cpus under 1 is a CFS quota: a lone request runs at full speed
    until the period's quota is spent (processor sharing at the fraction's speed
    said 222 ms where 127 ms were measured: WordPress, 30 % load, 0.5 cpus): the
    calibrated scenario models it with ``cpu_period`` and the report says so."""
    app = [AppReading("app1", 0.5, "NanoCpus", 4, "php-fpm -tt", 0.1)]
    notes = shape_notes(None, app, [], 2.0)
    assert notes == [
        "app1: a CPU limit under one core (0.5, a CFS quota of 50 ms per 100 ms): modelled "
        "as the kernel runs it (cpu_period): full speed until the period's quota is spent"
    ]
    whole = [AppReading("app1", 1.0, "NanoCpus", 4, "php-fpm -tt", 0.1)]
    assert shape_notes(None, whole, [], 2.0) == []


def test_the_cfs_period_of_a_quota_limit() -> None:
    assert cfs_period({"NanoCpus": 500_000_000}) == 0.1  # --cpus: the kernel's 100 ms
    assert cfs_period({"CpuQuota": 1_000, "CpuPeriod": 10_000}) == 0.01
    assert cfs_period({"CpuQuota": 50_000}) == 0.1  # no period given: the default
    assert cfs_period({}) is None  # no limit
    assert cfs_period({"CpusetCpus": "0"}) is None  # whole cores, no quota
    # a cpuset tighter than the quota binds: no period
    assert cfs_period({"NanoCpus": 3_000_000_000, "CpusetCpus": "0-1"}) is None
    assert cfs_period({"NanoCpus": 500_000_000, "CpusetCpus": "0-1"}) == 0.1
