"""Runs the Python module's pytest suite (tests/python/test_*.py) for ctest.

usage: run_pytest.py BUILD_DIR SOURCE_DIR
The module is build/python/unetind*.so, made by `make`. Exits 77 (a visible
skip) where pytest or NumPy is missing (Debian: python3-pytest,
python3-numpy) or the module was not built; pytest's "no tests ran" (5) is a
failure.
"""
import os
import sys

build_dir, source_dir = sys.argv[1], sys.argv[2]
missing = []
for name in ("pytest", "numpy"):
    try:
        __import__(name)
    except ImportError:
        missing.append(name)
if missing:
    print(f"skipped: {', '.join(missing)} not installed (Debian: python3-pytest, python3-numpy)")
    sys.exit(77)
module_dir = os.path.join(build_dir, "python")
built = os.path.isdir(module_dir) and any(f.startswith("unetind") and f.endswith(".so") for f in os.listdir(module_dir))
if not built:
    print(f"skipped: no unetind module in {module_dir} (pybind11-dev or python3-dev missing at build time)")
    sys.exit(77)

import pytest  # noqa: E402

sys.path.insert(0, module_dir)
os.environ["UNETIND_BUILD_DIR"] = build_dir
os.environ["UNETIND_SOURCE_DIR"] = source_dir
code = pytest.main(["-q", "-p", "no:cacheprovider", os.path.join(source_dir, "tests", "python")])
sys.exit(1 if code == 5 else int(code))
