"""Live-stack control without Docker: parsers on captured real output, command detection, errors.

The captured texts below come from the stack of tests/scenarios/live/galera-small.yaml
(Debian bookworm: php-fpm 8.2, MariaDB 10.11 + Galera 4.23, HAProxy 2.6,
docker 20.10 on cgroup v1), trimmed to the lines the parsers need; in the
HAProxy capture the db2 line's scur/hrsp_2xx/hrsp_5xx cells were set non-zero
so that the test tells the columns apart.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lbsim
from lbsim.cli.app import app
from lbsim.validation import collectors as col
from lbsim.validation import docker as dk
from lbsim.validation import lifecycle as life

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
MIXED = ROOT / "scenarios" / "mixed.yaml"

FPM_STATUS = (
    "Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
    "Cache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    '{"pool":"www","process manager":"static","start time":1795586378,"start since":4,'
    '"accepted conn":5,"listen queue":0,"max listen queue":0,"listen queue len":64,'
    '"idle processes":1,"active processes":1,"total processes":2,"max active processes":1,'
    '"max children reached":0,"slow requests":0}'
)

WSREP_DB1 = """\
wsrep_local_state_uuid\t5a832cd0-e895-11f1-a717-bfedaa613c10
wsrep_last_committed\t7
wsrep_replicated\t4
wsrep_replicated_bytes\t1888
wsrep_received\t10
wsrep_local_commits\t4
wsrep_local_cert_failures\t0
wsrep_local_replays\t0
wsrep_local_send_queue_avg\t0.166667
wsrep_local_recv_queue_avg\t0.2
wsrep_flow_control_paused_ns\t0
wsrep_flow_control_paused\t0
wsrep_flow_control_sent\t0
wsrep_flow_control_recv\t0
wsrep_flow_control_active\tfalse
wsrep_cert_deps_distance\t1
wsrep_local_state_comment\tSynced
wsrep_cert_interval\t0
wsrep_incoming_addresses\tdb1:0,db2:0,db3:0
wsrep_evs_delayed\t
wsrep_cluster_size\t3
wsrep_local_bf_aborts\t0
"""

HAPROXY_CSV = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,"
    "cli_abrt,srv_abrt,\n"
    "mysql,FRONTEND,,,0,1,8192,4,824,1096,0,0,0,,,,,OPEN,,,,,,,,,1,1,0,,,,0,0,0,4,,,,,,,,,,,0,0,"
    "0,,,\n"
    "mysql,db1,0,0,0,1,,2,412,548,,0,,0,0,0,0,UP,1,1,0,0,0,15,0,,1,1,1,,2,,2,0,,2,L4OK,,0,,,,,,"
    ",,,,,0,0\n"
    "mysql,db2,0,0,1,1,,1,206,274,,0,,0,0,0,0,UP,1,1,0,0,0,15,0,,1,1,2,,1,,2,0,,1,L4OK,,0,,3,,,2,"
    ",,,,,0,0\n"
    "mysql,BACKEND,0,0,0,1,820,4,824,1096,0,0,,0,0,0,0,UP,3,3,0,,0,15,0,,1,1,0,,4,,1,0,,4,,,,,,,"
    ",,,,,,,0,0\n"
    "stats,FRONTEND,,,1,1,8192,1,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,1,,,,0,0,0,0,0,0,,1,"
    "1,1,,\n"
)

PROC_STAT = """\
cpu  950496 440 175656 1173560 24878 0 1261 1558 0 0
cpu0 475009 249 82845 588116 16774 0 120 798 0 0
cpu1 475487 190 92810 585443 8103 0 1140 760 0 0
intr 1 2 3
"""

INSPECT = """[{"Id": "1a27afa8beab4e5dfb0accdafdce0d17788722c8975d58441761833db5a0ed91",
 "State": {"Status": "running", "Running": true, "ExitCode": 0,
           "Health": {"Status": "starting", "FailingStreak": 0}},
 "HostConfig": {"NanoCpus": 1500000000},
 "Config": {"Labels": {"com.docker.compose.project": "lbsim-live-galera-nginx",
                       "com.docker.compose.service": "db2"}}},
 {"Id": "006f542ccf22", "State": {"Status": "exited", "Running": false, "ExitCode": 137},
  "HostConfig": {"NanoCpus": 0},
  "Config": {"Labels": {"com.docker.compose.service": "lb"}}}]"""

# the cgroup v2 cpu.stat layout (Documentation/admin-guide/cgroup-v2.rst)
CPU_STAT_V2 = """\
usage_usec 8391024
user_usec 5420000
system_usec 2971024
nr_periods 12
nr_throttled 3
throttled_usec 40211
"""


# ---------------------------------------------------------------- CPU
def test_cgroup_v1_usage_is_nanoseconds() -> None:
    assert col.parse_cpuacct_usage("2115231398\n") == pytest.approx(2.115231398)


def test_cgroup_v2_cpu_stat_usage_usec() -> None:
    assert col.parse_cpu_stat(CPU_STAT_V2) == pytest.approx(8.391024)
    with pytest.raises(ValueError, match="usage_usec"):
        col.parse_cpu_stat("nr_periods 1\n")


def test_in_container_output_either_format() -> None:
    assert col.parse_in_container_cpu(CPU_STAT_V2) == pytest.approx(8.391024)
    assert col.parse_in_container_cpu("2130192690\n") == pytest.approx(2.13019269)


def test_host_cgroup_path_found_for_each_layout(tmp_path: Path) -> None:
    cid = "d9912eda9e40"
    v1 = tmp_path / "cpuacct" / "docker" / cid / "cpuacct.usage"
    v2 = tmp_path / "system.slice" / f"docker-{cid}.scope" / "cpu.stat"
    for path, text, seconds in ((v1, "1500000000\n", 1.5), (v2, CPU_STAT_V2, 8.391024)):
        path.parent.mkdir(parents=True)
        path.write_text(text)
        found = [p for p in col.cgroup_cpu_paths(cid, tmp_path) if p.is_file()]
        assert found == [path]
        assert col.parse_cgroup_cpu(path, path.read_text()) == pytest.approx(seconds)
        path.unlink()


def test_a_container_removed_while_measured_is_a_stack_error(tmp_path: Path) -> None:
    """A container removed mid-run (docker rm -f during a story's calibration)
    left a FileNotFoundError traceback; it is a StackError, which the CLI
    prints as one line with exit 3."""
    cid = "7a863f3fffd9f300fb921ebf88a3a57d"
    path = tmp_path / "cpuacct" / "docker" / cid / "cpuacct.usage"
    path.parent.mkdir(parents=True)
    path.write_text("1500000000\n")
    cpu = object.__new__(col.ContainerCpu)
    cpu.paths, cpu.ids = {"db1": path}, {"db1": cid}
    assert cpu.snapshot() == {"db1": pytest.approx(1.5)}
    path.unlink()
    with pytest.raises(dk.StackError, match=r"service 'db1': its container 7a863f3fffd9 is gone"):
        cpu.snapshot()


def test_proc_stat_busy_seconds_exclude_idle_and_iowait() -> None:
    busy_ticks = 950496 + 440 + 175656 + 0 + 1261 + 1558
    assert col.parse_proc_stat(PROC_STAT, 100) == pytest.approx(busy_ticks / 100)
    with pytest.raises(ValueError, match="aggregate"):
        col.parse_proc_stat("cpu0 1 2 3 4\n", 100)


def test_proc_stat_steal_seconds_are_the_eighth_field() -> None:
    assert col.parse_proc_steal(PROC_STAT, 100) == pytest.approx(1558 / 100)
    assert col.parse_proc_steal("cpu  1 2 3 4\n", 100) == 0.0  # an old kernel: no steal field
    with pytest.raises(ValueError, match="aggregate"):
        col.parse_proc_steal("cpu0 1 2 3 4 5 6 7 8\n", 100)
    assert 0.0 <= col.host_steal_seconds() <= col.host_cpu_seconds()


def test_own_cpu_seconds_grow_with_work() -> None:
    before = col.own_cpu_seconds()
    total = sum(i * i for i in range(2_000_000))
    assert total > 0
    assert col.own_cpu_seconds() > before


# ---------------------------------------------------------------- php-fpm
def test_fpm_status_cgi_response() -> None:
    s = col.parse_fpm_status(FPM_STATUS)
    assert (s.active_processes, s.idle_processes, s.total_processes) == (1, 1, 2)
    assert (s.listen_queue, s.max_listen_queue, s.listen_queue_len) == (0, 0, 64)
    assert (s.accepted_conn, s.max_children_reached, s.slow_requests) == (5, 0, 0)


def test_fpm_status_not_json_is_a_stack_error() -> None:
    with pytest.raises(dk.StackError, match="not JSON"):
        col.parse_fpm_status("Status: 404 Not Found\r\n\r\nFile not found.\n")


# ---------------------------------------------------------------- MariaDB / Galera
def test_global_status_parse_keeps_empty_values() -> None:
    g = col.parse_global_status(WSREP_DB1)
    assert g["wsrep_replicated"] == "4"
    assert g["wsrep_local_state_comment"] == "Synced"
    assert g["wsrep_evs_delayed"] == ""
    assert g["wsrep_incoming_addresses"] == "db1:0,db2:0,db3:0"


def test_status_delta_numeric_only() -> None:
    before = col.parse_global_status(WSREP_DB1)
    after = dict(before, wsrep_replicated="104", wsrep_local_state_comment="Donor/Desynced")
    d = col.status_delta(before, after)
    assert d["wsrep_replicated"] == 100
    assert d["wsrep_received"] == 0
    assert "wsrep_local_state_comment" not in d
    assert "wsrep_local_state_uuid" not in d


def test_galera_counters_use_the_model_keys_and_units() -> None:
    before = col.parse_global_status(WSREP_DB1)
    after = dict(
        before,
        wsrep_replicated="54",
        wsrep_local_cert_failures="3",
        wsrep_local_bf_aborts="2",
        wsrep_flow_control_paused_ns=str(2_500_000_000),
        wsrep_flow_control_paused="0.7",  # Galera's own since-FLUSH fraction is not used
        wsrep_local_recv_queue_avg="1.5",
        wsrep_last_committed="207",
    )
    g = col.galera_counters(before, after, elapsed=10.0)
    assert g["wsrep_replicated"] == 50
    assert g["wsrep_local_cert_failures"] == 3
    assert g["wsrep_local_bf_aborts"] == 2
    assert g["wsrep_flow_control_paused"] == pytest.approx(0.25)
    assert g["wsrep_local_recv_queue_avg"] == 1.5
    assert g["wsrep_last_committed"] == 207
    assert "recv_queue_time_avg" not in g  # no real counter


def test_galera_counter_names_are_the_simulators() -> None:
    data = """
name: g
duration: 5
warmup: 0
workload: {open: {rate: 20}, classes: [{name: w, cpu: 0.001,
  queries: [{kind: write, time: 0.001}]}]}
database: {engine: galera, nodes: 3}
"""
    result = lbsim.simulate(lbsim.loads_scenario(data)).to_dict()
    model = set(result["galera"]["nodes"]["db1"])
    before = col.parse_global_status(WSREP_DB1)
    real = set(col.galera_counters(before, before, elapsed=1.0))
    assert real <= model
    assert model - real == {"recv_queue_time_avg"}


# ---------------------------------------------------------------- HAProxy
def test_haproxy_csv_rows_and_servers() -> None:
    rows = col.parse_haproxy_csv(HAPROXY_CSV)
    assert [(r.proxy, r.server) for r in rows][:3] == [
        ("mysql", "FRONTEND"),
        ("mysql", "db1"),
        ("mysql", "db2"),
    ]
    servers = col.haproxy_servers(rows, "mysql")
    assert list(servers) == ["db1", "db2"]
    assert servers["db1"].stot == 2 and servers["db1"].status == "UP"
    assert servers["db2"].scur == 1 and servers["db2"].hrsp_5xx == 2
    assert servers["db2"].hrsp_2xx == 3


def test_haproxy_csv_refuses_other_text() -> None:
    with pytest.raises(dk.StackError, match="not HAProxy stats CSV"):
        col.parse_haproxy_csv("<html>503 Service Unavailable</html>")


# ---------------------------------------------------------------- lifecycle pieces
def test_docker_inspect_states() -> None:
    db2, lb = life.parse_inspect(INSPECT)
    assert (db2.service, db2.state, db2.health, db2.cpus) == ("db2", "running", "starting", 1.5)
    assert (lb.service, lb.state, lb.health, lb.exit_code) == ("lb", "exited", "", 137)


def test_project_name_and_directory() -> None:
    s = lbsim.load_scenario(MIXED)
    assert life.project_name("Shop v2.1", "nginx") == "lbsim-shop-v2-1-nginx"
    assert life.project_name(s.name, "haproxy") == "lbsim-mixed-haproxy"
    assert life.stack_dir(s, "haproxy") == Path("build/stack/mixed-haproxy")


# ---------------------------------------------------------------- finding docker
def _script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_compose_v2_preferred_when_it_answers(tmp_path: Path) -> None:
    docker = _script(tmp_path, "docker", 'test "$1 $2" = "compose version" && exit 0\nexit 1\n')
    _script(tmp_path, "docker-compose", "exit 0\n")
    assert dk.compose_command(str(docker), str(tmp_path)) == (str(docker), "compose")


def test_compose_v1_when_v2_is_missing(tmp_path: Path) -> None:
    docker = _script(tmp_path, "docker", 'echo "docker: unknown command: docker $1" >&2\nexit 1\n')
    v1 = _script(tmp_path, "docker-compose", "exit 0\n")
    assert dk.compose_command(str(docker), str(tmp_path)) == (str(v1),)


def test_no_compose_at_all(tmp_path: Path) -> None:
    docker = _script(tmp_path, "docker", "exit 1\n")
    with pytest.raises(dk.DockerUnavailable, match="neither `docker compose`"):
        dk.compose_command(str(docker), str(tmp_path))


def test_no_docker_on_path(tmp_path: Path) -> None:
    with pytest.raises(dk.DockerUnavailable, match="no `docker` command on PATH"):
        dk.locate(str(tmp_path))


def test_daemon_down_quotes_docker_info(tmp_path: Path) -> None:
    docker = _script(
        tmp_path,
        "docker",
        "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?' >&2\nexit 1\n",
    )
    with pytest.raises(dk.DockerUnavailable) as info:
        dk.check_daemon(str(docker))
    message = str(info.value)
    assert message.startswith("Docker is not available: `docker info` failed: Cannot connect")
    assert "start dockerd" in message
    assert isinstance(info.value, dk.StackError)


def test_run_reports_failures_and_timeouts() -> None:
    with pytest.raises(dk.StackError, match="failed: boom"):
        dk.run(["sh", "-c", "echo boom >&2; exit 4"])
    with pytest.raises(dk.StackError, match=r"did not finish within 0\.2 s"):
        dk.run(["sleep", "5"], timeout=0.2)
    with pytest.raises(dk.DockerUnavailable, match="is not installed"):
        dk.run(["lbsim-no-such-program"])


def test_default_base_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LBSIM_BASE_IMAGE", "example/base:1")
    assert life.default_base_image() == "example/base:1"
    monkeypatch.delenv("LBSIM_BASE_IMAGE")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert life.default_base_image() == "debian:bookworm-slim"


# ---------------------------------------------------------------- CLI without docker
@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.chdir(tmp_path)


@pytest.mark.cli
@pytest.mark.parametrize("command", ["status", "up", "down"])
@pytest.mark.usefixtures("no_docker")
def test_cli_without_docker_exits_3(command: str) -> None:
    result = CliRunner().invoke(app, ["stack", command, "--scenario", str(MIXED)])
    assert result.exit_code == 3, result.output
    assert "error: Docker is not available: no `docker` command on PATH" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.cli
@pytest.mark.usefixtures("no_docker")
def test_cli_unreplayable_scenario_exits_2(tmp_path: Path) -> None:
    text = MIXED.read_text().replace("policy: round_robin ", "policy: peak_ewma ")
    path = tmp_path / "ewma.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["stack", "status", "--scenario", str(path)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and "peak_ewma" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.cli
def test_cli_bad_balancer_exits_2() -> None:
    result = CliRunner().invoke(
        app, ["stack", "status", "--scenario", str(MIXED), "--balancer", "traefik"]
    )
    assert result.exit_code == 2
    assert "--balancer must be nginx or haproxy, not 'traefik'" in result.stderr


def test_cli_missing_scenario_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["stack", "status", "--scenario", os.fspath(tmp_path / "nope.yaml")]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
