"""The fixture scripts' own safetensors writer and reader (json + struct, no
safetensors library), shared by make_golden.py and tf_reference.py. Every
tensor is stored as little-endian float32; metadata values are strings."""

import json
import os
import struct

import numpy as np


def write_safetensors(path, tensors, metadata):
    """Writes `tensors` (name -> array) in the given order, atomically."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    body = raw[8 + n:]
    return {k: np.frombuffer(body[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"])
            for k, v in header.items()}


def check_written(path, tensors):
    """Re-reads `path` and compares every tensor bit for bit with `tensors`."""
    back = read_safetensors(path)
    assert back.keys() == tensors.keys(), path
    for k, v in tensors.items():
        want = np.asarray(v, np.float32)
        assert back[k].shape == want.shape and np.array_equal(back[k].view(np.uint32), want.view(np.uint32)), k
