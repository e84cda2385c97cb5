"""ctest's entry to the Python package's tests: runs pytest on tests/python, or skips (exit 77)
where pytest or NumPy is missing, which under CI=true is a failure instead (tests/tools/ci_skip.py).

Usage: run_pytest.py [PYTEST ARGS...]   (PYTHONPATH names build/python, GPUML_CLI the binary)
"""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tools"))
from ci_skip import skip  # noqa: E402

try:
    import numpy  # noqa: F401
    import pytest
except ImportError as e:
    skip(f"pytest/numpy not installed ({e})")

code = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", here, here, *sys.argv[1:]])
sys.exit(1 if code == 5 else int(code))  # 5: no test ran, a failure here
