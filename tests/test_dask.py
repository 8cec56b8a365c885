"""The Dask executor gives the same results as local processes for the same seeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lbsim.experiment.executors import DaskError, DaskExecutor, LocalExecutor, make_executor
from lbsim.experiment.sweep import sweep
from lbsim.scenario.loader import scenario_from_data

# one worker runs the module, so one LocalCluster starts per test run: two
# starting at once on a loaded 2-core machine timed out ("Cluster closed
# without starting up")
pytestmark = [pytest.mark.dask, pytest.mark.xdist_group("dask")]

distributed = pytest.importorskip("distributed")

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "duration": 10,
    "warmup": 2,
    "workload": {
        "open": {"rate": 30},
        "classes": [{"name": "job", "cpu": {"dist": "exponential", "mean": 0.02}}],
    },
    "app": {"nodes": 2, "workers": 4, "cores": 1},
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import dask

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "120s"}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as c,
    ):
        yield c


def test_dask_and_local_processes_give_identical_results(cluster: Any) -> None:
    scenario = scenario_from_data(dict(TINY), "<tiny>")
    params = ["workload.open.rate=20,40", "app.nodes=1,2"]
    with distributed.Client(cluster) as client:
        on_dask = DaskExecutor(client)
        assert on_dask.workers == 2
        assert "Dask cluster at tcp://" in on_dask.description
        remote = sweep(scenario, params, replications=2, executor=on_dask)
    with LocalExecutor(2) as pool:
        local = sweep(scenario, params, replications=2, executor=pool)
    runs_remote = [p.ordered_runs() for p in remote.points]
    runs_local = [p.ordered_runs() for p in local.points]
    assert json.dumps(runs_remote, sort_keys=True) == json.dumps(runs_local, sort_keys=True)
    assert remote.frame.equals(local.frame)


def test_scheduler_address_from_the_environment(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LBSIM_DASK_SCHEDULER", cluster.scheduler_address)
    executor = make_executor(jobs=1)
    try:
        assert isinstance(executor, DaskExecutor)
        assert executor.address == cluster.scheduler_address
    finally:
        executor.close()


def test_a_bad_address_is_a_clear_error() -> None:
    with pytest.raises(DaskError, match="--dask: 'not an address' is not a scheduler address"):
        DaskExecutor("not an address")


def test_lbsim_run_on_dask_matches_local(cluster: Any, tmp_path: Any) -> None:
    """`lbsim run --dask ADDRESS` runs the replications on the cluster, same numbers."""
    import yaml
    from typer.testing import CliRunner

    from lbsim.cli.app import app

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "replications": 3}))
    runner = CliRunner()
    remote = runner.invoke(
        app,
        [
            "run",
            str(path),
            "-q",
            "--json",
            str(tmp_path / "r.json"),
            "--dask",
            cluster.scheduler_address,
        ],
    )
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, ["run", str(path), "-q", "--json", str(tmp_path / "l.json")])
    assert local.exit_code == 0, local.output
    a = json.loads((tmp_path / "r.json").read_text())
    b = json.loads((tmp_path / "l.json").read_text())
    for d in (a, b):
        d.pop("meta")
    assert a == b
    assert a["replications"] == 3


def test_lbsim_run_with_a_bad_scheduler_address_says_so() -> None:
    from typer.testing import CliRunner

    from lbsim.cli.app import app

    result = CliRunner().invoke(
        app, ["run", "scenarios/theory/mm1.yaml", "-q", "--dask", "nonsense"]
    )
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at nonsense" in result.stderr
    assert "Traceback" not in result.output
