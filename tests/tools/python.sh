#!/bin/sh
# Runs an interop check under the Python that has its tools: $GPUML_TEST_PYTHON when set (CI's
# virtual environment, which adds ONNX Runtime from PyPI to Debian's torch and onnx), else Debian's.
exec "${GPUML_TEST_PYTHON:-/usr/bin/python3}" "$@"
