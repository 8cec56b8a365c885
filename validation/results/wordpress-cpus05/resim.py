"""The replays of this directory simulated again with and without cpu_period (CFS.md)."""

import json, yaml, copy
from pathlib import Path
import lbsim
from lbsim.scenario.loader import scenario_from_data

out = Path(__file__).resolve().parent
for lvl in (30, 60):
    for rep in (1, 2, 3):
        f = out / f"level-{lvl}-r{rep}.calibrated.yaml"
        base = yaml.safe_load(f.read_text())
        m = json.load(open(out / f"level-{lvl}-r{rep}-measured.json"))
        res = {}
        for label in ("cfs", "ps"):
            d = copy.deepcopy(base)
            if label == "ps":
                for n in d["app"]["nodes"]:
                    n.pop("cpu_period", None)
            r = lbsim.simulate(scenario_from_data(d, str(f), base_dir=out), replications=1).runs[0]
            res[label] = r["latency"]
        ml = m["latency"]
        print(
            f"{lvl}% r{rep}: measured mean {ml['mean'] * 1e3:.0f} p95 {ml['p95'] * 1e3:.0f} | "
            + " | ".join(
                f"{k} mean {v['mean'] * 1e3:.0f} ({(v['mean'] - ml['mean']) / ml['mean']:+.0%}) p95 {v['p95'] * 1e3:.0f} ({(v['p95'] - ml['p95']) / ml['p95']:+.0%})"
                for k, v in res.items()
            )
        )
