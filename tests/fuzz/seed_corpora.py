#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (tests/fuzz/fuzz_<name>.cpp).

    seed_corpora.py OUT_DIR              every seed: made here, from tests/data
                                         and from ../shared/fixtures when present
    seed_corpora.py --made-here OUT_DIR  only the seeds this script makes
                                         (what tests/fuzz/seeds/ holds)

Each harness gets OUT_DIR/<name>/. The inputs made here are small valid files
of every kind each parser takes (PNG colour types, bit depths and interlacing;
safetensors dtypes; .npy versions; a complete tensor bundle; both DAGM lists;
JSON and binary inference requests), so that the fuzzers start from inputs
that get through, not only from ones that fail at the first byte. Standard
library only.
"""
import json
import pathlib
import struct
import sys
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_SEED_BYTES = 256 * 1024  # larger files are truncated: the fuzzers' -max_len


# ---------------------------------------------------------------- PNG

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_rows(pixels, bit_depth):
    """Scanlines (filter byte 0) of rows of samples."""
    out = b""
    for row in pixels:
        samples = [s for px in row for s in (px if isinstance(px, tuple) else (px,))]
        if bit_depth == 16:
            data = b"".join(struct.pack(">H", s) for s in samples)
        elif bit_depth == 8:
            data = bytes(samples)
        else:
            bits = "".join(format(s, "0%db" % bit_depth) for s in samples)
            bits += "0" * (-len(bits) % 8)
            data = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        out += b"\0" + data
    return out


def make_png(width, height, color_type, bit_depth, interlace=False, palette=None, trns=None):
    top = (1 << bit_depth) - 1
    channels = CHANNELS[color_type]

    def pixel(x, y):
        values = tuple((x * 7 + y * 13 + c * 5) % (top + 1) for c in range(channels))
        if color_type == 3:
            return values[0] % len(palette)
        return values if channels > 1 else values[0]

    image = [[pixel(x, y) for x in range(width)] for y in range(height)]
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = [row[x0::dx] for row in image[y0::dy]]
            if sub and sub[0]:
                raw += png_rows(sub, bit_depth)
    else:
        raw = png_rows(image, bit_depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, int(interlace)))
    if palette:
        out += png_chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(raw))
    return out + png_chunk(b"IEND", b"")


def png_seeds():
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    seeds = {}
    for depth in (1, 2, 4, 8, 16):
        seeds["gray%d.png" % depth] = make_png(5, 3, 0, depth)
        seeds["gray%d_adam7.png" % depth] = make_png(9, 10, 0, depth, interlace=True)
    for depth in (8, 16):
        seeds["rgb%d.png" % depth] = make_png(4, 4, 2, depth)
        seeds["gray_alpha%d.png" % depth] = make_png(3, 5, 4, depth)
        seeds["rgba%d_adam7.png" % depth] = make_png(11, 9, 6, depth, interlace=True)
    for depth in (1, 2, 4, 8):
        seeds["palette%d.png" % depth] = make_png(6, 2, 3, depth, palette=palette[: 1 << min(depth, 2)] + palette[:1])
    seeds["palette_trns.png"] = make_png(3, 3, 3, 8, palette=palette, trns=b"\x00\x80")
    seeds["gray_trns.png"] = make_png(3, 3, 0, 8, trns=b"\x00\x07")
    seeds["one_pixel.png"] = make_png(1, 1, 0, 8)
    seeds["one_row.png"] = make_png(64, 1, 0, 8)
    return seeds


# ---------------------------------------------------------------- safetensors

def safetensors_file(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = struct.pack("<6f", 0.0, -1.5, 3.25, 1e-30, -65536.0, 0.1)
    f16 = struct.pack("<4H", 0x3C00, 0xC000, 0x7C00, 0x0001)
    bf16 = struct.pack("<4H", 0x3F80, 0xC000, 0x4049, 0x7FC0)
    kernel = struct.pack("<9f", *[0.1 * i for i in range(9)])
    return {
        "mixed.safetensors": safetensors_file(
            [("w", "F32", [2, 3], f32), ("h", "F16", [4], f16), ("b", "BF16", [2, 2], bf16)], {"format": "pt"}),
        "model_names.safetensors": safetensors_file(
            [("UNet_v1/input_block/conv2d/kernel", "F32", [3, 3, 1, 1], kernel),
             ("UNet_v1/input_block/conv2d/bias", "F32", [1], struct.pack("<f", 0.5))],
            {"variant": "tinyUNet", "activation": "relu", "format": "unet-industrial"}),
        "scalar_and_empty.safetensors": safetensors_file(
            [("s", "F32", [], struct.pack("<f", 2.0)), ("e", "F32", [0, 3], b"")]),
        "metadata_only.safetensors": safetensors_file([], {"step": "3", "loader_state": "{\"epoch\": 0}"}),
    }


# ---------------------------------------------------------------- npy

def npy_file(shape, descr="<f4", fortran=False, version=1, values=None):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    prefix = 10 if version == 1 else 12
    header += " " * (-(prefix + len(header) + 1) % 64) + "\n"
    count = 1
    for d in shape:
        count *= d
    size = 8 if descr.endswith("8") else 4
    data = values if values is not None else b"".join(struct.pack("<f", 0.25 * i) for i in range(count))
    data = data[: count * size] if size == 4 else b"\0" * (count * size)
    length = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode() + data


def npy_seeds():
    return {
        "f32_2x3x4.npy": npy_file([2, 3, 4]),
        "f32_scalar.npy": npy_file([]),
        "f32_vector.npy": npy_file([5]),
        "f32_empty.npy": npy_file([0, 4]),
        "f32_v2.npy": npy_file([3, 2], version=2),
        "f32_fortran.npy": npy_file([2, 2], fortran=True),
        "f64.npy": npy_file([2], descr="<f8"),
    }


# ---------------------------------------------------------------- TF tensor bundle

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, value):
    return varint(number << 3 | 2) + varint(len(value)) + value


def leveldb_block(entries):
    body = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)  # one restart point, at 0


def with_trailer(block):
    return block + b"\0" + struct.pack("<I", masked(crc32c(block + b"\0")))


def finish_table(entries):
    """A LevelDB table of one data block: the block, an empty metaindex, the
    index block, the footer."""
    table = with_trailer(leveldb_block(entries))
    data_handle = varint(0) + varint(len(table) - 5)
    empty = leveldb_block([])
    metaindex = (len(table), len(empty))
    table += with_trailer(empty)
    index_block = leveldb_block([(entries[-1][0] + b"\xff", data_handle)])
    index = (len(table), len(index_block))
    table += with_trailer(index_block)
    footer = varint(metaindex[0]) + varint(metaindex[1]) + varint(index[0]) + varint(index[1])
    return table + footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)


def tensor_bundle(tensors):
    """tensors: (name, dtype number, shape, bytes, masked crc32c). Returns
    (index, data shard)."""
    data, entries = b"", [(b"", field_varint(1, 1) + field_bytes(3, field_varint(1, 1)))]
    for name, dtype, shape, payload, crc in sorted(tensors):
        shape_proto = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
        entry = (field_varint(1, dtype) + field_bytes(2, shape_proto) + field_varint(4, len(data)) +
                 field_varint(5, len(payload)) + varint(6 << 3 | 5) + struct.pack("<I", crc))
        entries.append((name.encode(), entry))
        data += payload
    return finish_table(entries), data


def fixed(name, dtype, shape, payload):
    return (name, dtype, shape, payload, masked(crc32c(payload)))


def strings_tensor(name, strings):
    """TF's string tensor layout (varint lengths, their checksum, the bytes),
    whose checksum runs over the lengths as uint32, their checksum, then the
    bytes."""
    lengths = b"".join(varint(len(s)) for s in strings)
    crc = 0
    for s in strings:
        crc = crc32c(struct.pack("<I", len(s)), crc)
    stored = struct.pack("<I", masked(crc))
    crc = crc32c(b"".join(strings), crc32c(stored, crc))
    return (name, 7, [len(strings)] if len(strings) != 1 else [], lengths + stored + b"".join(strings), masked(crc))


def packed(index, data):
    return struct.pack("<I", len(index)) + index + data


def object_graph(pairs):
    """A TrackableObjectGraph with one node per (checkpoint key, variable name)."""
    nodes = b""
    for key, name in pairs:
        attribute = field_bytes(1, b"VARIABLE_VALUE") + field_bytes(2, name) + field_bytes(3, key)
        nodes += field_bytes(1, field_bytes(2, attribute))
    return nodes


def tf_bundle_seeds():
    kernel = struct.pack("<9f", *[0.1 * i for i in range(9)])
    tf1 = tensor_bundle([
        fixed("UNet_v1/input_block/conv2d/kernel", 1, [3, 3, 1, 1], kernel),
        fixed("UNet_v1/input_block/conv2d/bias", 1, [1], struct.pack("<f", 0.5)),
        fixed("UNet_v1/input_block/conv2d/kernel/RMSProp", 1, [3, 3, 1, 1], kernel),
        fixed("global_step", 9, [], struct.pack("<q", 7)),
    ])
    graph = object_graph([(b"model/k/.ATTRIBUTES/VARIABLE_VALUE", b"UNet_v1/input_block/conv2d/kernel")])
    tf2 = tensor_bundle([
        fixed("model/k/.ATTRIBUTES/VARIABLE_VALUE", 1, [3, 3, 1, 1], kernel),
        strings_tensor("_CHECKPOINTABLE_OBJECT_GRAPH", [graph]),
        strings_tensor("names", [b"a", b"", b"ccc"]),
    ])
    return {"tf1.bundle": packed(*tf1), "tf2.bundle": packed(*tf2)}


# ---------------------------------------------------------------- DAGM lists

def dagm_list_seeds():
    labels = b"1\r\n1\t0\t0001.PNG\t0\t0\t\r\n2\t1\t0002.PNG\t0\t0001_label.PNG\t\r\n"
    csv = (b"image_filepath,lbl_image_filepath,is_defective\n0001.PNG,,0\n"
           b"0002.PNG,0001_label.PNG,1\n")
    return {
        "labels_train.txt": b"\x00" + labels,
        "labels_test_skip.txt": b"\x06" + labels + b"3\t0\t0003.PNG\t0\t0\n",
        "csv_train.csv": b"\x01" + csv,
        "csv_test.csv": b"\x03" + csv.replace(b"0002.PNG", b"/abs/0002.PNG"),
    }


# ---------------------------------------------------------------- inference requests

def request_seeds():
    pixels = list(range(4 * 6))
    json_fp32 = {"id": "r1", "parameters": {"threshold": 0.25},
                 "inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 4, 6, 1],
                             "data": [p / 12.0 - 1 for p in pixels]}],
                 "outputs": [{"name": "defect_score"}, {"name": "mask", "parameters": {"binary_data": True}}]}
    json_u8 = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [2, 2, 3, 1],
                           "data": [[[[0], [128], [255]], [[1], [2], [3]]], [[[9], [8], [7]], [[6], [5], [4]]]]}],
               "parameters": {"binary_data_output": True}}
    binary = struct.pack("<%df" % len(pixels), *[p / 12.0 - 1 for p in pixels])
    header = json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 4, 6, 1],
                                     "parameters": {"binary_data_size": len(binary)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                                     {"name": "is_defective"}]}).encode()
    return {
        "json_fp32.req": b"\x00" + json.dumps(json_fp32).encode(),
        "json_uint8.req": b"\x00" + json.dumps(json_u8).encode(),
        "binary_fp32.req": b"\x01" + struct.pack("<H", len(header)) + header + binary,
    }


MADE_HERE = {
    "png": png_seeds,
    "safetensors": safetensors_seeds,
    "npy": npy_seeds,
    "tf_bundle": tf_bundle_seeds,
    "dagm_lists": dagm_list_seeds,
    "serve_request": request_seeds,
}


def found_files(shared):
    """Seeds from the project's test data and, when present, ../shared/fixtures."""
    data = ROOT / "tests" / "data"
    out = {
        "png": sorted(data.rglob("*.png")),
        "safetensors": sorted(p for p in data.rglob("*.safetensors") if p.stat().st_size <= MAX_SEED_BYTES),
        "npy": sorted(p for p in data.rglob("*.npy") if p.stat().st_size <= MAX_SEED_BYTES),
        "dagm_lists": [],
    }
    bundles = sorted(data.rglob("*.index"))
    if shared.is_dir():
        dagm = shared / "fixtures" / "dagm2007"
        out["png"] += sorted(dagm.rglob("*_label.PNG"))[:8] + sorted(dagm.glob("Class*/Train/*.PNG"))[:4]
        out["dagm_lists"] = sorted(dagm.rglob("Labels.txt"))
        bundles += sorted((shared / "fixtures" / "tf_checkpoint").rglob("*.index"))
    return out, bundles


def write(out_dir, name, files):
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, payload in files.items():
        (folder / file_name).write_bytes(payload[:MAX_SEED_BYTES])


def main(argv):
    made_here_only = "--made-here" in argv
    args = [a for a in argv if a != "--made-here"]
    if len(args) != 1:
        sys.exit(__doc__)
    out_dir = pathlib.Path(args[0])
    for name, make in MADE_HERE.items():
        write(out_dir, name, make())
    if made_here_only:
        return
    found, bundles = found_files(ROOT.parent / "shared")
    for name, paths in found.items():
        prefix = {"dagm_lists": b"\x00"}.get(name, b"")
        write(out_dir, name, {"%02d_%s" % (i, p.name): prefix + p.read_bytes() for i, p in enumerate(paths)})
    tf = {}
    for i, index in enumerate(bundles):
        shards = sorted(index.parent.glob(index.name[: -len(".index")] + ".data-*"))
        data = shards[0].read_bytes()[:MAX_SEED_BYTES] if shards else b""
        tf["%02d_%s.bundle" % (i, index.parent.name)] = packed(index.read_bytes(), data)
    write(out_dir, "tf_bundle", tf)


if __name__ == "__main__":
    main(sys.argv[1:])
