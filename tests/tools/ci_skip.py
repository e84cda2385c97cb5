"""Skipping an interop check for want of a tool: exit 77 (ctest's SKIP_RETURN_CODE) on a user's
machine, but a failure under CI=true, so that CI cannot go green by skipping what it must run."""
import os
import sys


def skip(reason):
    if os.environ.get("CI", "").lower() == "true":
        print(f"{reason}: required under CI=true (.ci/run installs it), so this is a failure")
        sys.exit(1)
    print(f"{reason}: skipped")
    sys.exit(77)
