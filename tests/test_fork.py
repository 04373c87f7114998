"""A process forked while other threads evaluate can evaluate too.

Locks are inherited by a forked child in the state they had: one that another thread held at the
fork stays held for ever in the child (that thread does not exist there). Before the engine
renewed them after a fork, 16 of 40 children forked while three threads evaluated deadlocked.
The forking runs in a subprocess, and each child is killed after a timeout, so a deadlock fails
the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORK_CHILD = """
import json, os, random, sys, threading, time
from pathlib import Path
import yaml
from crs_rules import evaluate, load_protocol, parse_patient

root, forks, timeout = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
protocol = load_protocol(root / "rules")
states = [parse_patient(yaml.safe_load(path.read_text()))
          for path in sorted((root / "examples").glob("*.yaml"))]
reference = [evaluate(state, protocol) for state in states]
stop = threading.Event()
thread_errors = []

def worker(offset):
    k = offset
    while not stop.is_set():
        try:
            if evaluate(states[k % len(states)], protocol) != reference[k % len(states)]:
                thread_errors.append(k)
        except BaseException as exc:
            thread_errors.append(repr(exc))
        k += 1

threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(3)]
for thread in threads:
    thread.start()
rng = random.Random(7)
deadlocks = failed = 0
for _ in range(forks):
    time.sleep(rng.uniform(0, 0.002))
    pid = os.fork()
    if pid == 0:
        try:
            ok = all(evaluate(state, protocol) == ref for state, ref in zip(states, reference))
            os._exit(0 if ok else 3)
        except BaseException:
            os._exit(4)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            failed += os.waitstatus_to_exitcode(status) != 0
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            deadlocks += 1
            break
        time.sleep(0.002)
stop.set()
for thread in threads:
    thread.join()
print(json.dumps({"forks": forks, "deadlocks": deadlocks, "failed": failed,
                  "thread_errors": thread_errors[:5]}))
"""


# 40 forks (marked slow: make test-all and CI); 20 in make test, where a lock held at the fork in 16
# of 40 would still deadlock some child all but surely.
@pytest.mark.parametrize("forks", [pytest.param(20, id="fast"), pytest.param(40, id="full", marks=pytest.mark.slow)])
def test_children_forked_while_threads_evaluate_evaluate_correctly_and_exit(forks: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", FORK_CHILD, str(ROOT), str(forks), "5"]
    child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert child.returncode == 0, child.stderr[-3000:]
    stats = json.loads(child.stdout)
    assert stats == {"forks": forks, "deadlocks": 0, "failed": 0, "thread_errors": []}
