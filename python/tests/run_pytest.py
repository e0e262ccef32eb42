#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The meson test 'python': pytest over python/tests/ (python/meson.build sets the environment:
PYTHONPATH, SIAMESE_LIBRARY, SIAMESE_TEST_*). Exits 77, meson's skip, with a loud message
when numpy or pytest is missing: the package needs numpy, the tests pytest (Debian:
python3-numpy, python3-pytest; scripts/setup-debian.sh --tests installs both)."""
import importlib.util
import os
import sys

missing = [m for m in ("numpy", "pytest") if importlib.util.find_spec(m) is None]
if missing:
    print("=" * 78)
    print(f"SKIP: the Python package's tests need {' and '.join(missing)}, not found for "
          f"{sys.executable} (Debian: apt-get install "
          f"{' '.join('python3-' + m for m in missing)}; scripts/setup-debian.sh --tests)")
    print("=" * 78)
    sys.exit(77)

import pytest  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main([here, "-q", "-p", "no:cacheprovider", "-ra", *sys.argv[1:]]))
