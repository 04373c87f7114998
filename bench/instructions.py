"""Instructions per evaluation, counted by valgrind: a figure other processes on the machine cannot move.

Run it with ``.venv/bin/python bench/instructions.py`` (``--mapping`` to evaluate from the raw
mappings, ``parse_patient`` included; ``--passes N`` passes over the mix, 1 by default). It needs
``valgrind`` (with ``callgrind_control``) on the PATH and runs this script again under
``valgrind --tool=callgrind`` with instrumentation off; the child evaluates the whole benchmark mix
once untimed (warm-up), turns instrumentation on, evaluates the mix ``--passes`` times, turns it off,
and callgrind reports the instructions executed meanwhile. Printed: instructions per evaluation, and
with ``--top N`` the N functions of most instructions (their own, C functions only: the interpreter,
the engine's C code, libc).

Wall-clock and CPU-time figures on a shared machine move with the load (see README.md); the count of
instructions does not (within about 1 % from run to run), so it compares two versions of the code
run at different times. It is not a time: an instruction of ``memset`` costs far less than one of
the interpreter's dispatch loop.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py: the patient mix)

from crs_rules import evaluate, load_protocol  # noqa: E402


def _child(mapping: bool, passes: int) -> None:
    protocol = load_protocol(run.ROOT / "rules")
    mix = run.build_mix()
    inputs = [patient.data if mapping else patient.state for patient in mix]
    for state in inputs:
        evaluate(state, protocol)
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, stdout=subprocess.DEVNULL)
    for _ in range(passes):
        for state in inputs:
            evaluate(state, protocol)
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, stdout=subprocess.DEVNULL)
    print(len(inputs) * passes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mapping", action="store_true", help="evaluate from the raw mappings")
    parser.add_argument("--passes", type=int, default=1, help="passes over the mix counted (default 1)")
    parser.add_argument("--top", type=int, default=0, help="also list the N functions of most instructions")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.passes < 1 or args.top < 0:
        parser.error("--passes must be at least 1 and --top at least 0")
    if args.child:
        _child(args.mapping, args.passes)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (with callgrind_control) is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                   sys.executable, __file__, "--child", f"--passes={args.passes}"]
        if args.mapping:
            command.append("--mapping")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        collected = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or collected is None or not done.stdout.strip().isdigit():
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        evaluations = int(done.stdout.strip())
        instructions = int(collected.group(1))
        what = "evaluate(mapping)" if args.mapping else "evaluate(parsed state)"
        print(f"{what}: {instructions / evaluations / 1e6:.2f} million instructions per evaluation "
              f"({instructions:,} over {evaluations} evaluations)")
        if args.top:
            annotated = subprocess.run(["callgrind_annotate", "--inclusive=no", str(out)],
                                       capture_output=True, text=True, check=False).stdout
            rows = [line for line in annotated.splitlines() if re.match(r"\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", line)]
            for line in rows[1:args.top + 1]:  # the first row is the program total
                print("  " + line.strip()[:150])
    return 0


if __name__ == "__main__":
    sys.exit(main())
