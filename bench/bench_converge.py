#!/usr/bin/env python3
"""Benchmark: converge speed of site.yml on the local stack, cold (empty account) then again (no-op).

On a reset emulator and an empty Prefect server (the local stack's instance selected by
LOCAL_STACK_INSTANCE / *_PORT, the test instance unless told otherwise), runs site.yml twice with moto's
request recorder on and prints, for each run: wall time, AWS requests, mutating AWS requests, changed
tasks, task runs (results that were not skipped, loop items one by one: each AWS module among them is a
module process; controller-side actions such as set_fact count too, as the JSON callback does not name
the action); then the no-op/cold ratio against the
issue's targets (#14). `--slowest N` prints the N slowest tasks of each run, as profile_tasks would
(measured from the JSON callback's per-task start/end).

`--delays NAT,ALB,SERVICE` (seconds) makes the emulator hold NAT gateways `pending`, load balancers
`provisioning` and ECS service deployments IN_PROGRESS that long (scripts/moto_patches_delays.py), and
prints the cold wall time against the sum and the longest chain of the injected delays; it first runs the
same cold converge without delays, so that what the delays add (the waits the converge does not overlap)
is printed too. The delays are set on the running moto server for this benchmark only and set back to 0
at the end.

    LOCAL_STACK_INSTANCE=test .venv/bin/python bench/bench_converge.py [--slowest 15] [--delays 20,30,30]

It measures and prints; it is not a test (exit status 0 unless a run fails).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LOCAL_STACK_INSTANCE", "test")

from tests.helpers.stack import ApiCall, MotoRecorder, _action, ensure_stack_up, moto_url, reset_account, run_playbook  # noqa: E402

LOCK_ACTIONS = ("PutParameter", "DeleteParameter")
TARGETS = {"noop_wall_s": 12, "noop_requests": 70, "noop_mutating": 0, "noop_changed": 0, "cold_wall_s": 30,
           "ratio": 0.4}


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def set_delays(nat: float, alb: float, service: float) -> bool:
    """Set the emulator's pending delays (scripts/moto_patches_delays.py); False when moto lacks the patch."""
    body = json.dumps({"nat": nat, "alb": alb, "service": service}).encode()
    req = urllib.request.Request(moto_url() + "/_local_stack/delays", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status == 200
    except OSError:
        return False


def deployer_calls(recorder: MotoRecorder) -> tuple[list, list]:
    """The recording split into the deployer's requests (Ansible's user agent) and everyone else's.

    While site.yml runs, the worker service's container polls its SQS queue (ReceiveMessage) and the
    Fargate stand-in reports task states: those are not the converge's requests.
    """
    recorder.calls()  # stops the recording
    with urllib.request.urlopen(moto_url() + "/moto-api/recorder/download-recording", timeout=30) as resp:
        lines = [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]
    entries = []
    for entry in lines:
        agent = {k.lower(): v for k, v in entry.get("headers", {}).items()}.get("user-agent", "")
        entries.append((ApiCall(entry.get("method", ""), entry.get("url", ""), _action(entry)), agent))
    mine = [call for call, agent in entries if "Ansible/" in agent]
    return mine, [call for call, agent in entries if "Ansible/" not in agent]


def measure(label: str, slowest: int, requests: bool = False) -> dict:
    recorder = MotoRecorder().start()
    start = time.monotonic()
    run = run_playbook("site.yml", timeout=3600)
    wall = time.monotonic() - start
    calls, background = deployer_calls(recorder)
    if run.rc != 0:
        print(f"{label}: site.yml failed (rc {run.rc}):", *run.failed_messages, run.stderr[-2000:], sep="\n  ")
        raise SystemExit(1)
    module_runs = 0
    runs_by_role: dict[str, int] = {}
    timings = []
    for play in run.data.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                # Loop items one by one; skipped ones start nothing.
                items = result.get("results") if isinstance(result.get("results"), list) else [result]
                runs = sum(1 for item in items if isinstance(item, dict) and not item.get("skipped"))
                module_runs += runs
                role = task["task"]["name"].split(" : ", 1)[0] if " : " in task["task"]["name"] else "(plays)"
                runs_by_role[role] = runs_by_role.get(role, 0) + runs
            duration = task.get("task", {}).get("duration", {})
            if duration.get("start") and duration.get("end"):
                timings.append((_ts(duration["end"]) - _ts(duration["start"]), task["task"]["name"]))
    # The stack lock (playbooks/site.yml) takes and releases an SSM parameter on every run, by design: counted apart.
    lock = [call for call in calls if call.mutating and call.action in LOCK_ACTIONS]
    figures = {"wall_s": wall, "requests": len(calls), "mutating": sum(call.mutating for call in calls) - len(lock),
               "changed": len(run.changed_tasks), "module_runs": module_runs, "tasks": len(timings)}
    print(f"{label:5} wall {wall:6.1f} s  AWS requests {figures['requests']:4}  mutating {figures['mutating']:3} (+{len(lock)} stack lock)  "
          f"changed {figures['changed']:3}  task runs {module_runs:4}  tasks {len(timings)}  "
          f"(+{len(background)} requests of the running worker)")
    by_role: dict[str, list] = {}
    for seconds, name in timings:
        role = name.split(" : ", 1)[0] if " : " in name else "(plays)"
        by_role.setdefault(role, []).append(seconds)
    print("      per role (time/tasks/task runs): "
          + ", ".join(f"{role} {sum(v):.1f} s/{len(v)}/{runs_by_role.get(role, 0)}" for role, v in by_role.items()))
    if slowest:
        for seconds, name in sorted(timings, reverse=True)[:slowest]:
            print(f"      {seconds:6.2f} s  {name}")
    if requests:
        counts: dict[str, int] = {}
        for call in calls:
            counts[call.action or call.method] = counts.get(call.action or call.method, 0) + 1
        print("      requests:", ", ".join(f"{action} {n}" for action, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))
    if label == "no-op" and figures["changed"]:
        print("      changed:", ", ".join(run.changed_tasks))
    if label == "no-op" and figures["mutating"]:
        print("      mutating:", ", ".join(f"{call.method} {call.action or call.url}" for call in calls if call.mutating and call not in lock))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--slowest", type=int, default=0, metavar="N", help="print the N slowest tasks of each run")
    parser.add_argument("--delays", default="", metavar="NAT,ALB,SERVICE",
                        help="injected pending delays in seconds (cold run only is compared against them)")
    parser.add_argument("--cold-only", action="store_true", help="skip the no-op run")
    parser.add_argument("--requests", action="store_true", help="count the no-op's AWS requests by action")
    parser.add_argument("--no-baseline", action="store_true",
                        help="with --delays: skip the cold run without delays that the delayed one is compared with")
    parser.add_argument("--noop-only", action="store_true",
                        help="no reset, no cold run: one no-op run on the stack as it is (deployed before)")
    args = parser.parse_args()
    delays = [float(x) for x in args.delays.split(",")] if args.delays else []
    if delays and len(delays) != 3:
        parser.error("--delays takes three numbers: NAT,ALB,SERVICE")

    ensure_stack_up()
    if args.noop_only:
        measure("no-op", args.slowest, args.requests)
        return
    baseline = None
    if delays and not args.no_baseline:
        # The same cold converge without delays, just before: what the delays add is the difference (the
        # converge's own work, 1-2 minutes here, is not a wait, and no overlap can hide it).
        reset_account()
        baseline = measure("cold (no delays)", args.slowest)
    reset_account()
    if delays and not set_delays(*delays):
        raise SystemExit("the running moto server has no delay patch (restart the local stack)")
    try:
        cold = measure("cold", args.slowest)
        noop = None if args.cold_only else measure("no-op", args.slowest, args.requests)
    finally:
        if delays:
            set_delays(0, 0, 0)

    if noop:
        ratio = noop["wall_s"] / cold["wall_s"]
        checks = [("no-op wall", noop["wall_s"], TARGETS["noop_wall_s"], "s"),
                  ("no-op AWS requests", noop["requests"], TARGETS["noop_requests"], ""),
                  ("no-op mutating", noop["mutating"], TARGETS["noop_mutating"], ""),
                  ("no-op changed", noop["changed"], TARGETS["noop_changed"], ""),
                  ("cold wall", cold["wall_s"], TARGETS["cold_wall_s"], "s"),
                  ("no-op/cold", ratio, TARGETS["ratio"], "")]
        print("targets (#14):")
        for name, value, target, unit in checks:
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            print(f"  {name:20} {shown:>8}{unit:1}  target <= {target}{unit}  {'ok' if value <= target else 'MISSED'}")
    if delays:
        nat, alb, service = delays
        # NAT and ALB creations do not depend on each other; the service deployment needs the ALB's target group.
        chain = max(nat, alb + service)
        print(f"delays NAT {nat:g} s, ALB {alb:g} s, service {service:g} s: sum {sum(delays):g} s, longest chain "
              f"{chain:g} s; cold wall {cold['wall_s']:.1f} s = {cold['wall_s'] / chain:.2f} x the longest chain, "
              f"{cold['wall_s'] - sum(delays):+.1f} s against the sum")
        if baseline:
            added = cold["wall_s"] - baseline["wall_s"]
            print(f"  the delays added {added:.1f} s to the cold wall ({baseline['wall_s']:.1f} s without them): "
                  f"{added / chain:.2f} x the longest chain, {added / sum(delays):.2f} x the sum "
                  f"(target: cold wall -> converge work + longest chain, i.e. added <= 1.2 x the longest chain: "
                  f"{'ok' if added <= 1.2 * chain else 'MISSED'})")


if __name__ == "__main__":
    main()
