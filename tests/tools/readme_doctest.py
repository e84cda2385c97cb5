#!/usr/bin/python3
"""The README's shell examples run, so that the README and the program cannot drift apart.

Usage: readme_doctest.py GPUML_BINARY README.md WORK_DIR

Every ```sh or ```bash block of the README runs, in the order it appears, with bash -e -o pipefail
in one fresh directory (WORK_DIR/session: what one block writes, such as runs/mlp, the next one
reads, as for a reader following along), with the build's gpuml and this test's python3 first on PATH. To keep it short,
`gpuml train` there stops after 5 optimizer steps (--max-steps 5 is added unless the example gives
its own); nothing else about the commands changes.

A block that cannot run here says so in the README, on the line just before its fence, with a reason:
  <!-- doctest: skip: REASON -->                 never run (a GPU, minutes of work, installing packages)
  <!-- doctest: needs-python-module: NAME -->    run when python3 can import NAME, else skipped (and
                                                 listed); under CI=true a missing module is a failure
A marker without a reason, or not followed by a shell block, is an error, as is a README with no
block to run. Skips (exit 77) without Fashion-MNIST, which the examples train on.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402

FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*doctest:\s*(skip|needs-python-module):\s*(.*?)\s*-->\s*$")
MAX_STEPS = 5


def shell_blocks(readme):
    """[(line number of the fence, code, marker kind or None, marker argument)] for sh/bash blocks,
    and the errors in the markers."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    blocks, errors = [], []
    in_block, lang, start, body, marker = False, "", 0, [], None
    previous = (0, "")  # the last non-blank line: a marker must be just before its fence
    for number, line in enumerate(lines, 1):
        if in_block:
            if line.strip() == "```":
                if lang in ("sh", "bash"):
                    blocks.append((start, "\n".join(body) + "\n", *(marker or (None, None))))
                in_block = False
            else:
                body.append(line)
        elif FENCE.match(line):
            in_block, lang, start, body = True, FENCE.match(line).group(1), number, []
            m = MARKER.match(previous[1])
            marker = (m.group(1), m.group(2)) if m else None
            if marker and not marker[1]:
                errors.append(f"README.md:{previous[0]}: a doctest marker needs a reason")
            if marker and lang not in ("sh", "bash"):
                errors.append(f"README.md:{previous[0]}: a doctest marker before a ```{lang} block (only sh/bash run)")
        elif line.strip() and MARKER.match(previous[1]):
            errors.append(f"README.md:{previous[0]}: a doctest marker not followed by a code block")
        if line.strip():
            previous = (number, line)
    return blocks, errors


def write_wrapper(bin_dir, gpuml):
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "gpuml")
    with open(path, "w") as f:
        f.write(f"""#!/bin/sh
# readme_doctest.py: the build's gpuml; `train` stops after {MAX_STEPS} steps unless told otherwise.
if [ "$1" = train ]; then
  for arg in "$@"; do
    case "$arg" in --max-steps|--max-steps=*) exec '{gpuml}' "$@";; esac
  done
  shift
  exec '{gpuml}' train --max-steps {MAX_STEPS} "$@"
fi
exec '{gpuml}' "$@"
""")
    os.chmod(path, 0o755)
    # `python3` in an example is the Python running this test (CI's virtual environment with onnx).
    os.symlink(sys.executable, os.path.join(bin_dir, "python3"))


def python_has(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def main():
    gpuml, readme, work = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        skip("dataset-fashion-mnist not installed (the README's examples train on it)")
    blocks, errors = shell_blocks(readme)
    for e in errors:
        print(e)
    if errors:
        return 1
    session, bin_dir = os.path.join(work, "session"), os.path.join(work, "bin")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(session)
    write_wrapper(bin_dir, gpuml)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    ran, skipped, missing = 0, [], []
    for line, code, kind, argument in blocks:
        if kind == "skip":
            skipped.append(f"README.md:{line}: {argument}")
            continue
        if kind == "needs-python-module" and not python_has(argument):
            missing.append(f"README.md:{line}: needs the Python module {argument}")
            continue
        print(f"== README.md:{line}\n{code}", flush=True)
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=session, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r.stdout, flush=True)
        if r.returncode != 0:
            print(f"README.md:{line}: this example failed (exit {r.returncode}); fix the README or the program")
            return 1
        ran += 1
    print(f"ran {ran} blocks; skipped {len(skipped) + len(missing)}:")
    for s in skipped + missing:
        print("  " + s)
    if ran == 0:
        print("no README example ran: the doc-test would check nothing")
        return 1
    if missing and os.environ.get("CI", "").lower() == "true":
        print("a Python module an example needs is missing: required under CI=true (.ci/run installs it)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
