#!/usr/bin/python3
"""Writes tests/data/mixed_dtypes.safetensors by hand (struct + json, no
safetensors library), so the C++ reader is checked against an independent
writer. The values are exact in their dtype; tests/test_safetensors.cpp holds
the same values as literals.

Layout on purpose: the JSON keys are not in data-offset order (the reader must
return tensors sorted by offset) and the header carries no padding.
"""
import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "mixed_dtypes.safetensors")

# float32, shape [2, 3]
f32 = [0.0, -1.5, 3.25, 1e-30, -65536.0, 0.1]
# bfloat16, shape [4]: the upper 16 bits of the float32 pattern (all exact)
bf16 = [1.0, -2.0, 3.140625, -0.0078125]
# float16, shape [2, 4]: normal, largest normal, smallest subnormal, largest
# subnormal, infinities, negative zero and a NaN
f16 = [-2.5, 65504.0, 2.0 ** -24, 1023 * 2.0 ** -24, math.inf, -math.inf, -0.0, math.nan]


def bf16_bits(values):
    out = b""
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        assert bits & 0xFFFF == 0, v
        out += struct.pack("<H", bits >> 16)
    return out


blobs = [
    ("weights_f16", "F16", [2, 4], struct.pack("<8e", *f16)),
    ("bias_f32", "F32", [2, 3], struct.pack("<6f", *f32)),
    ("scale_bf16", "BF16", [4], bf16_bits(bf16)),
]
header = {}
offset = 0
for name, dtype, shape, data in blobs:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
    offset += len(data)
header["__metadata__"] = {"format": "pt", "source": "make_safetensors_fixture.py"}
# Keys reversed so file order (by offset) differs from JSON order.
text = json.dumps(dict(reversed(list(header.items())))).encode()

with open(OUT, "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for _, _, _, data in blobs:
        f.write(data)
print(OUT, len(text), offset)
