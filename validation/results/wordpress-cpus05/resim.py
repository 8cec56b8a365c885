"""The replays of this directory simulated again with and without cpu_period (CFS.md)."""

import copy
import json
from pathlib import Path

import yaml

import lbsim
from lbsim.scenario.loader import scenario_from_data

HERE = Path(__file__).resolve().parent


def _error(model: float, measured: float) -> str:
    return f"{model * 1e3:.0f} ({(model - measured) / measured:+.0%})"


def main() -> None:
    for level in (30, 60):
        for rep in (1, 2, 3):
            path = HERE / f"level-{level}-r{rep}.calibrated.yaml"
            base = yaml.safe_load(path.read_text())
            measured = json.loads((HERE / f"level-{level}-r{rep}-measured.json").read_text())
            ml = measured["latency"]
            row = [
                f"{level}% r{rep}: measured mean {ml['mean'] * 1e3:.0f} p95 {ml['p95'] * 1e3:.0f}"
            ]
            for label in ("cfs", "ps"):
                data = copy.deepcopy(base)
                if label == "ps":
                    for node in data["app"]["nodes"]:
                        node.pop("cpu_period", None)
                sc = scenario_from_data(data, str(path), base_dir=HERE)
                got = lbsim.simulate(sc, replications=1).runs[0]["latency"]
                row.append(
                    f"{label} mean {_error(got['mean'], ml['mean'])} "
                    f"p95 {_error(got['p95'], ml['p95'])}"
                )
            print(" | ".join(row))


if __name__ == "__main__":
    main()
