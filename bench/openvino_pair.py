"""A quick same-run pairing of ours and OpenVINO at batch 8 (fp32 and bf16),
alternated round by round, for when bench/peers.py (the full table) does not
fit: the ONNX file is `unet-industrial export --batch 8` of MODEL, and
OpenVINO is set up as peers.py sets it up.

    build/peers-venv/bin/python bench/openvino_pair.py MODEL_b8.onnx build/bin/unet-industrial MODEL.safetensors
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import openvino as ov

PAIR_JSON = os.path.join(tempfile.mkdtemp(), "ours.json")
onnx, cli, model = sys.argv[1:4]
core = ov.Core()
x = np.random.default_rng(0).random((8, 512, 512, 1), dtype=np.float32) * 2 - 1
reqs = {}
for prec in ("f32", "bf16"):
    c = core.compile_model(core.read_model(onnx), "CPU", {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": prec})
    reqs[prec] = c.create_infer_request(); reqs[prec].infer({0: x})
for r in range(2):
    for prec, ours in (("f32", "fp32"), ("bf16", "bf16")):
        t = []
        for _ in range(4):
            t0 = time.perf_counter(); reqs[prec].infer({0: x}); t.append(time.perf_counter() - t0)
        ov_ips = 8 / sorted(t)[len(t)//2]
        subprocess.run([cli, "benchmark", "--batch", "8", "--threads", "2", "--iters", "4", "--warmup", "1", "--precision", ours, "--model", model, "--json", PAIR_JSON], capture_output=True, check=True)
        o = json.load(open(PAIR_JSON))
        ours_ips = 8000 / o["latency_ms"]["p50"]
        print(f"round {r+1} {ours}: ours {ours_ips:.2f} img/s, OpenVINO {ov.get_version()} {ov_ips:.2f} img/s, ours/OpenVINO {ours_ips/ov_ips:.2f}", flush=True)
