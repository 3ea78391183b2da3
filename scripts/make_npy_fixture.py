#!/usr/bin/python3
"""Writes the .npy fixtures under tests/data/ with numpy itself, so the C++
reader is checked against numpy's writer (tests/test_npy.cpp holds the values
as a formula: 0.5 * i - 3 for the i-th element in C order)."""
import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

values = (0.5 * np.arange(24, dtype=np.float32) - 3).reshape(2, 3, 4)
np.save(os.path.join(DATA, "numpy_f32_2x3x4.npy"), values)
np.save(os.path.join(DATA, "numpy_f32_scalar.npy"), np.float32(7.25))
# Valid .npy files the reader must refuse: another dtype and Fortran order.
np.save(os.path.join(DATA, "numpy_f64_2x3x4.npy"), values.astype(np.float64))
np.save(os.path.join(DATA, "numpy_f32_fortran.npy"), np.asfortranarray(values))
