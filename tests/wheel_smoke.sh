#!/usr/bin/env bash
# The package as users get it: build the sdist, build the wheel from it (as `python -m build` does),
# install that wheel into a fresh venv outside the clone and use it from another folder. Also builds
# a wheel straight from the tree (as `pip install .` does) and checks it holds the same files.
# Fails (non-zero, the failing step named) if anything is missing from the wheel.
#
# Usage: tests/wheel_smoke.sh [PYTHON]   (PYTHON: 3.11 or 3.12; default .venv/bin/python)
# Needs PyPI (or pip's cache) for setuptools and the runtime dependencies.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-$root/.venv/bin/python}
case $python in */*) python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python") ;; esac  # used after cd
work=$(mktemp -d "${TMPDIR:-/tmp}/crs-rules-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

current=start
step() { current=$*; printf 'wheel-check: %s\n' "$*"; }
fail() { printf 'wheel-check: FAILED (%s): %s\n' "$current" "$*" >&2; exit 1; }
run() { "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; fail "$*"; }; }
started=$SECONDS

cd "$root"
# The venvs are made without pip (ensurepip takes most of a venv's creation time); PYTHON's pip
# installs into them with --python, as the venv's own pip would.
pip() { "$python" -m pip --python "$@"; }
step "build environment with the build-system requirements of pyproject.toml"
run "$python" -m venv --without-pip "$work/build-env"
"$python" -c 'import sys, tomllib; print(*tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"], sep="\n")' \
  pyproject.toml >"$work/build-requires.txt"
run pip "$work/build-env/bin/python" install --quiet -r "$work/build-requires.txt"

# Build from a copy of the working tree as a fresh checkout has it (tracked and new files, none
# ignored): leftovers of local builds (*.egg-info/SOURCES.txt, build/) would hide a broken sdist.
step "copy of the working tree"
mkdir "$work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
    if [ -e "$file" ] || [ -L "$file" ]; then printf '%s\0' "$file"; fi
  done | tar --null -T - -cf - | tar -xf - -C "$work/src"
else
  tar --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' -cf - . | tar -xf - -C "$work/src"
fi
cd "$work/src"
step "sdist"
run "$work/build-env/bin/python" -c 'import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])' "$work/sdist"
sdist=$(ls "$work"/sdist/*.tar.gz)
step "wheel from the sdist"
run pip "$work/build-env/bin/python" wheel --quiet --no-deps --no-build-isolation -w "$work/wheel" "$sdist"
step "wheel from the tree"
run pip "$work/build-env/bin/python" wheel --quiet --no-deps --no-build-isolation -w "$work/tree-wheel" .
cd "$root"
wheel=$(ls "$work"/wheel/*.whl)

step "install $(basename "$wheel") into a fresh venv"
run "$python" -m venv --without-pip "$work/venv"
run pip "$work/venv/bin/python" install --quiet "$wheel"

# From here on nothing may come from the clone: another folder, with an example copied into it.
mkdir "$work/elsewhere"
cp examples/grade3-adult.yaml README.md "$work/elsewhere/"
# What must be shipped: the files of rules/ and schemas/ a fresh checkout has (as copied above).
find "$work/src/rules" "$work/src/schemas" -type f ! -path '*/.*' ! -path '*/__pycache__/*' ! -name '*.pyc' \
  | sed "s|^$work/src/||" | sort >"$work/elsewhere/expected-files.txt"
cd "$work/elsewhere"
bin=$work/venv/bin
export PATH="$bin:$PATH"

step "contents: every file of rules/ and schemas/ (tracked or new) in the package, unchanged; LICENSE; both wheels alike"
run "$bin/python" - "$root" "$wheel" "$(ls "$work"/tree-wheel/*.whl)" <<'PY'
import hashlib, sys, zipfile
from importlib import metadata
from pathlib import Path

import crs_rules
from crs_rules._resources import default_pack_dir, schema_dir

root, wheel, tree_wheel = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
venv = Path(sys.prefix).resolve()
problems = []
package = Path(crs_rules.__file__).resolve().parent
if not package.is_relative_to(venv):
    problems.append(f"crs_rules is imported from {package}, not from the venv")
for folder, found in (("rules", default_pack_dir()), ("schemas", schema_dir())):
    if not found.resolve().is_relative_to(package):
        problems.append(f"{folder} is read from {found}, not from the installed package")
expected = Path("expected-files.txt").read_text().split()
if not expected:
    problems.append("no files listed for rules/ and schemas/")
for name in expected:
    folder, _, rest = name.partition("/")
    installed = package / "data" / folder / rest
    if not installed.is_file():
        problems.append(f"missing from the wheel: {name} (crs_rules/data/{name})")
    elif installed.read_bytes() != (root / name).read_bytes():
        problems.append(f"differs in the wheel: {name}")
shipped = sorted(str(p.relative_to(package / "data")) for p in (package / "data").rglob("*") if p.is_file())
for name in sorted(set(shipped) - set(expected)):
    problems.append(f"in the wheel but not in rules/ or schemas/: {name}")
dist = metadata.distribution("crs-rules")
if dist.metadata["License-Expression"] != "Apache-2.0":
    problems.append(f"License-Expression is {dist.metadata['License-Expression']!r}")
licence = [f for f in dist.files or [] if f.name == "LICENSE"]
if not licence or licence[0].read_text() != (root / "LICENSE").read_text():
    problems.append("LICENSE is not in the wheel's metadata")
def listing(path):
    with zipfile.ZipFile(path) as archive:
        return {i.filename: hashlib.sha256(archive.read(i)).hexdigest() for i in archive.infolist()
                if not i.filename.endswith(".dist-info/RECORD")}
if listing(wheel) != listing(tree_wheel):
    problems.append("the wheel built from the sdist and the one built from the tree differ")
print(*problems, sep="\n")
sys.exit(1 if problems else 0)
PY
printf 'crs_rules/data: %s files\n' "$(wc -l <expected-files.txt)"

step "crs-rules --version"
run crs-rules --version
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")
grep -q -- "$version" "$work/out" || fail "crs-rules --version does not print $version: $(cat "$work/out")"

step "crs-rules validate (the shipped pack)"
run crs-rules validate
grep -q '^OK ' "$work/out" || fail "crs-rules validate: $(cat "$work/out")"

step "crs-rules test (the shipped scenarios)"
run crs-rules test
step "crs-rules trace --check (statements, seed protocol, TRACEABILITY.md)"
run crs-rules trace --check

step "crs-rules evaluate grade3-adult.yaml"
run crs-rules evaluate grade3-adult.yaml
grep -qi 'grade 3' "$work/out" || fail "crs-rules evaluate: no grade 3 in: $(cat "$work/out")"
run crs-rules evaluate --format json grade3-adult.yaml

step "the README's library examples"
run "$bin/python" - <<'PY'
import re
from pathlib import Path

blocks = re.findall(r"```python\n(.*?)```", Path("README.md").read_text(encoding="utf-8"), re.S)
assert blocks, "no python example in README.md"
for number, code in enumerate(blocks, 1):
    exec(compile(code, f"README.md python example {number}", "exec"), {})
PY

step "OK in $((SECONDS - started)) s"
