#!/usr/bin/env python3
"""Our speed against the engines a user would deploy TinyUNet on instead, in
the same run: OpenVINO, ONNX Runtime and PyTorch 2 (eager channels_last and
torch.compile), with the same weights, inputs, threads, batch and image size.

    make bench-peers                       # makes build/peers-venv, then runs this
    build/peers-venv/bin/python bench/peers.py --cli build/bin/unet-industrial \\
        [--threads 2] [--image-size 512] [--rounds 3] [--rows infer1,infer8,train16] [--json FILE]

For every row (inference at batch 1 and 8, training at batch 16) each engine
runs in a worker process of its own (so that its peak memory is its own),
started once for the row and precision; the engines of a precision then take
turns round by round, so that the machine's drifting speed hits all of them
alike. Ours runs as
`unet-industrial benchmark` in each round. Before an engine is timed its
probabilities on the check images are compared with our fp32 ones, the
reference computation: within 1e-4 in fp32; in bf16 and int8 all but a
share of them within 0.02, the share being 0.1% or twice our own at that
precision, whichever is larger. Two reduced-precision computations part
most at the few pixels whose logit is near 0 (our bf16 and int8 differ from
our fp32 by up to 0.26 and 0.97 at single pixels of a model trained at 128
and run at 512), and how many such pixels there are depends on the model:
0.03% of them for one demo model, 0.13% for another, for our int8 and ONNX
Runtime's alike. So an engine is held to what our own reduced precision
gives on the same model, with room to spare. An engine that differs more is
reported, not timed; the table shows each one's share.

The weights are those of a trained model (--model, or a short `demo`
training run when none is given), exported to ONNX by `unet-industrial
export` for OpenVINO and ONNX Runtime and copied into a PyTorch module for
torch. ONNX Runtime's INT8 model is its own static quantisation of that ONNX
(QDQ, per-channel weights), calibrated on the same images as ours.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------- the weights

def read_safetensors(path):
    """name -> float32 array, from a safetensors file (F32/BF16/F16)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "F32":
            a = np.frombuffer(raw, np.float32)
        elif info["dtype"] == "F16":
            a = np.frombuffer(raw, np.float16).astype(np.float32)
        elif info["dtype"] == "BF16":
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {info['dtype']}")
        out[name] = a.reshape(info["shape"]).copy()
    return out


# TinyUNet's structure (SPEC.md section 1): blocks of two 3x3 convolutions;
# the decoder's up2x + 2x2 "deconv"; concat [decoder, skip].
DOWN = ["input_block", "downsample_block_1", "downsample_block_2", "downsample_block_3"]
UP = ["upsample_block_1", "upsample_block_2", "upsample_block_3"]


def torch_model(weights, channels_last=True):
    import torch
    import torch.nn.functional as F

    class TinyUNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.ParameterDict()
            for name, value in weights.items():
                # HWIO (TensorFlow) -> OIHW (torch); ParameterDict keys may not hold "/" or ".".
                self.w[name.replace("/", "__")] = torch.nn.Parameter(
                    torch.from_numpy(value.transpose(3, 2, 0, 1).copy() if value.ndim == 4 else value.copy()))

        def conv(self, x, scope, relu=True):
            k = self.w[(scope + "/kernel").replace("/", "__")]
            b = self.w[(scope + "/bias").replace("/", "__")]
            if k.shape[-1] == 2:  # TF SAME for a 2x2 kernel: 0 before, 1 after
                x = F.pad(x, (0, 1, 0, 1))
                y = F.conv2d(x, k, b)
            else:
                y = F.conv2d(x, k, b, padding=k.shape[-1] // 2)
            return F.relu(y) if relu else y

        def forward(self, x):  # x: N x 1 x H x W, scaled to [-1, 1]; returns logits
            skips = []
            for block in DOWN:
                x = self.conv(x, f"UNet_v1/{block}/conv2d")
                x = self.conv(x, f"UNet_v1/{block}/conv2d_1")
                skips.append(x)
                x = F.max_pool2d(x, 2)
            x = self.conv(x, "UNet_v1/bottleneck_block/conv2d")
            x = self.conv(x, "UNet_v1/bottleneck_block/conv2d_1")
            x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"), "UNet_v1/bottleneck_block/deconv2d/conv2d")
            for block, skip in zip(UP, reversed(skips[1:])):
                x = torch.cat([x, skip], 1)
                x = self.conv(x, f"UNet_v1/{block}/conv2d")
                x = self.conv(x, f"UNet_v1/{block}/conv2d_1")
                x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"), f"UNet_v1/{block}/deconv2d/conv2d")
            x = torch.cat([x, skips[0]], 1)
            x = self.conv(x, "UNet_v1/ouputs_block/conv2d")
            x = self.conv(x, "UNet_v1/ouputs_block/conv2d_1")
            return self.conv(x, "UNet_v1/ouputs_block/conv2d_2", relu=False)

    m = TinyUNet()
    return m.to(memory_format=torch.channels_last) if channels_last else m


# ------------------------------------------------------------------ engines
# Each engine: build(args) -> infer(batch NHWC float32) -> probabilities NHWC,
# and for training engines step(images, masks).

class OpenVino:
    def __init__(self, a):
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": a.threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if a.precision == "bf16" else "f32"}
        self.compiled = core.compile_model(core.read_model(a.onnx), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version()

    def infer(self, x):
        self.request.infer({0: x})
        return self.request.get_output_tensor(0).data.copy()


class OnnxRuntime:
    def __init__(self, a):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = a.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = a.onnx_int8 if a.precision == "int8" else a.onnx
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.version = ort.__version__

    def infer(self, x):
        return self.session.run(None, {self.input: x})[0]


class Torch:
    def __init__(self, a):
        import torch
        torch.set_num_threads(a.threads)
        self.torch = torch
        self.version = torch.__version__
        self.bf16 = a.precision == "bf16"
        self.model = torch_model(read_safetensors(a.weights))
        self.run = torch.compile(self.model) if a.engine == "torch-compile" else self.model
        if a.mode == "train":
            self.optimizer = torch.optim.RMSprop(self.model.parameters(), lr=1e-4, alpha=0.9, eps=1e-10,
                                                 momentum=0.8, centered=True)
            self.train_step = torch.compile(self._train_step) if a.engine == "torch-compile" else self._train_step

    def _nchw(self, x):
        return self.torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=self.torch.channels_last)

    def infer(self, x):
        torch = self.torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            p = torch.sigmoid(self.run(self._nchw(x)).float())
        return p.permute(0, 2, 3, 1).numpy()

    def _train_step(self, x, y):
        torch = self.torch
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(x).float()
        # NVIDIA's adaptive loss (SPEC.md section 2), computed branch-free,
        # and the L2 weight decay: the work our training step does.
        p = torch.sigmoid(logits)
        dice = (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss = torch.where(1 - dice < 0.3, 1 - dice, bce)
        loss = loss + 1e-5 * sum((w * w).sum() for w in self.model.parameters()) / 2
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def step(self, images, masks):
        self.train_step(self._nchw(images), self._nchw(masks))


ENGINES = {
    "openvino": (OpenVino, ["fp32", "bf16"], ["infer"]),
    "onnxruntime": (OnnxRuntime, ["fp32", "int8"], ["infer"]),
    "torch-eager": (Torch, ["fp32", "bf16"], ["infer", "train"]),
    "torch-compile": (Torch, ["fp32", "bf16"], ["infer", "train"]),
}


def peak_rss_mb():
    """VmHWM: this process's peak resident memory. (getrusage's ru_maxrss
    would carry the parent's peak across fork and exec.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def compare(probs, expected):
    """How far one engine's probabilities are from the expected ones."""
    n = len(expected)
    diff = np.abs(probs.reshape(n, -1) - expected.reshape(n, -1))
    return {"max_diff": float(diff.max()), "frac_over_0.02": float((diff > 0.02).mean())}


def worker(a):
    """Serves timing requests for one engine and row on stdin/stdout (JSON lines)."""
    engine = ENGINES[a.engine][0](a)
    rng = np.random.default_rng(0)
    shape = (a.batch, a.image_size, a.image_size, 1)
    x = (rng.random(shape, dtype=np.float32) * 2 - 1).astype(np.float32)
    masks = np.zeros(shape, np.float32)
    masks[:, : a.image_size // 4, : a.image_size // 4, :] = 1
    work = (lambda: engine.step(x, masks)) if a.mode == "train" else (lambda: engine.infer(x))
    for line in sys.stdin:
        request = json.loads(line)
        reply = {"version": engine.version}
        try:
            if request["do"] == "check":
                inputs = np.load(request["inputs"])
                # In batches of the row's size (an ONNX model's batch is
                # fixed), the last one filled up with repeats.
                n = len(inputs)
                padded = np.concatenate([inputs, inputs[:(-n) % a.batch]]) if n % a.batch else inputs
                probs = np.concatenate([engine.infer(padded[i:i + a.batch]) for i in range(0, len(padded), a.batch)])
                reply.update(compare(probs[:n], np.load(request["expected"])))
            else:
                for _ in range(request["warmup"]):
                    work()
                ms = []
                for _ in range(request["iters"]):
                    t0 = time.perf_counter()
                    work()
                    ms.append((time.perf_counter() - t0) * 1000)
                reply.update(ms=ms, peak_rss_mb=peak_rss_mb())
        except Exception as e:  # reported in the table, not fatal to the run
            reply["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(reply), flush=True)


# ------------------------------------------------------------------ the run

class Worker:
    def __init__(self, a, engine, precision, mode, batch, onnx):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--precision", precision,
               "--mode", mode, "--batch", str(batch), "--threads", str(a.threads), "--image-size",
               str(a.image_size), "--weights", a.weights, "--onnx", onnx, "--onnx-int8", a.onnx_int8_for(batch)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"error": "the worker died"}

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class CommandFailed(RuntimeError):
    pass


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def ours_supports(cli, precision):
    return precision != "int8" or "int8" in run([cli, "benchmark", "--help"])


def ours_model(a, precision):
    """Our weights for `precision`: int8 runs the calibrated copy."""
    return a.model_int8 if precision == "int8" else a.model


def prepare(a, work):
    """The model, its ONNX exports, the check images and our probabilities."""
    if not a.model:
        print("training a model for the comparison (unet-industrial demo, 300 steps at 128x128)...", flush=True)
        run([a.cli, "demo", "--out", os.path.join(work, "demo"), "--steps", "300"])
        a.model = os.path.join(work, "demo", "run", "model.safetensors")
    a.weights = a.model
    # Check and calibration images: real DAGM images where ../shared is, else
    # generated ones, all at the image size.
    images_dir = os.path.join(work, "images")
    run([a.cli, "synth", "--out", os.path.join(work, "synth"), "--class", "1", "--size", str(a.image_size),
         "--train-defective", "8", "--train-ok", "8", "--test-defective", "4", "--test-ok", "4"])
    os.makedirs(images_dir, exist_ok=True)
    from PIL import Image
    test = os.path.join(work, "synth", "Class1", "Test")
    files = sorted(f for f in os.listdir(test) if f.endswith(".PNG"))
    inputs = []
    for f in files:
        shutil.copy(os.path.join(test, f), images_dir)
        inputs.append(np.asarray(Image.open(os.path.join(test, f)), np.float32)[:, :, None] / 127.5 - 1)
    a.check_inputs = os.path.join(work, "check_inputs.npy")
    np.save(a.check_inputs, np.stack(inputs))
    # INT8 calibration for both engines on the same images: the Train split.
    train = os.path.join(work, "synth", "Class1", "Train")
    a.calibration_inputs = np.stack([np.asarray(Image.open(os.path.join(train, f)), np.float32)[:, :, None] / 127.5 - 1
                                     for f in sorted(f for f in os.listdir(train) if f.endswith(".PNG"))])
    a.model_int8 = os.path.join(work, "model_int8.safetensors")
    if ours_supports(a.cli, "int8"):
        run([a.cli, "calibrate", "--model", a.model, "--data", os.path.join(work, "synth"), "--class", "1",
             "--split", "Train", "--image-size", str(a.image_size), "--out", a.model_int8])
    a.expected, a.refused = {}, {}
    for precision in ("fp32", "bf16", "int8"):
        if not ours_supports(a.cli, precision):
            continue
        out = os.path.join(work, f"pred_{precision}")
        try:
            run([a.cli, "predict", "--model", ours_model(a, precision), "--out", out, "--precision", precision,
                 "--image-size", str(a.image_size), images_dir])
        except CommandFailed as e:
            # This CPU has no kernels for it (bf16 below AVX-512): a row of
            # the table saying so, and no peers at that precision.
            if precision == "fp32":
                raise
            a.refused[precision] = next((l for l in str(e).splitlines() if l.startswith("error:")), str(e))
            continue
        a.expected[precision] = os.path.join(work, f"expected_{precision}.npy")
        np.save(a.expected[precision],
                np.stack([np.load(os.path.join(out, f.replace(".PNG", "_prob.npy"))) for f in files]))

    a.onnx_for = {}
    a.onnx_int8 = {}
    for batch in sorted({r[1] for r in a.rows if r[0] == "infer"}):
        path = os.path.join(work, f"model_b{batch}.onnx")
        run([a.cli, "export", "--model", a.model, "--format", "onnx", "--batch", str(batch), "--out", path])
        a.onnx_for[batch] = path
        a.onnx_int8[batch] = quantise_for_ort(path, a.calibration_inputs, batch)
    a.onnx_int8_for = lambda b: a.onnx_int8.get(b, "")


def quantise_for_ort(path, calibration, batch):
    """ONNX Runtime's own static INT8 quantisation, calibrated on our images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            import onnxruntime as ort
            name = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()[0].name
            self.batches = iter([{name: calibration[i:i + batch]} for i in range(0, len(calibration) - batch + 1, batch)]
                                or [{name: np.repeat(calibration[:1], batch, 0)}])

        def get_next(self):
            return next(self.batches, None)

    pre = path.replace(".onnx", "_pre.onnx")
    quant_pre_process(path, pre)
    out = path.replace(".onnx", "_int8.onnx")
    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def ours(a, mode, batch, precision, iters, warmup):
    work = a.workdir
    path = os.path.join(work, "ours.json")
    run([a.cli, "benchmark", "--mode", mode, "--batch", str(batch), "--threads", str(a.threads), "--precision",
         precision, "--image-size", str(a.image_size), "--iters", str(iters), "--warmup", str(warmup),
         "--model", ours_model(a, precision), "--json", path])
    r = json.load(open(path))
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default=os.path.join(HERE, "..", "build", "bin", "unet-industrial"))
    p.add_argument("--model", help="weights (.safetensors); default: a short demo training run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", default="infer1,infer8,train16")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--iters", type=int, default=0, help="timed iterations a round (default: by row)")
    p.add_argument("--json", help="write every measurement here")
    # worker mode (internal)
    p.add_argument("--worker")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--mode", default="infer")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--weights")
    p.add_argument("--onnx")
    p.add_argument("--onnx-int8")
    a = p.parse_args()
    if a.worker:
        a.engine = a.worker
        return worker(a)

    a.rows = [(r.rstrip("0123456789"), int(r[len(r.rstrip("0123456789")):])) for r in a.rows.split(",")]
    engines = a.engines.split(",")
    a.workdir = tempfile.mkdtemp(prefix="unetind-peers-")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    try:
        prepare(a, a.workdir)
    except CommandFailed as e:
        raise SystemExit(str(e))
    precisions = [q for q in ("fp32", "bf16", "int8") if q in a.expected]
    results = []
    for mode, batch in a.rows:
        iters = a.iters or {("infer", 1): 10, ("infer", 8): 4, ("train", 16): 2}.get((mode, batch), 3)
        # One precision at a time: the engines of a precision take turns
        # round by round, and only their workers are alive, since a training
        # row's workers together hold more memory than the machine has (at
        # batch 16, 512x512: 4-8 GB each), which made whoever ran under that
        # pressure 10x slower.
        for precision in precisions:
            if mode == "train" and precision == "int8":
                continue
            contenders = [("ours", precision, None)]
            for e in engines:
                _, engine_precisions, modes = ENGINES[e]
                if precision in engine_precisions and mode in modes:
                    contenders.append((e, precision, Worker(a, e, precision, mode, batch, a.onnx_for.get(batch, ""))))
            row = {}
            for name, precision, w in contenders:  # check before timing
                entry = row.setdefault((name, precision), {"engine": name, "precision": precision, "mode": mode,
                                                           "batch": batch, "ms": [], "peak_rss_mb": 0})
                if mode == "train":
                    continue
                if w is None:  # ours: what `predict` gave at this precision, against its fp32
                    reply = compare(np.load(a.expected[precision]), np.load(a.expected["fp32"]))
                else:
                    reply = w.ask(do="check", inputs=a.check_inputs, expected=a.expected["fp32"])
                entry["version"] = reply.get("version")
                entry["max_diff"] = reply.get("max_diff")
                entry["frac_over_0.02"] = reply.get("frac_over_0.02")
                if "error" in reply:
                    entry["error"] = reply["error"]
                elif precision == "fp32" and reply["max_diff"] > 1e-4:
                    entry["error"] = f"probabilities differ from our fp32 by {reply['max_diff']:.3g}"
                elif precision != "fp32" and w is None:
                    allowed = max(1e-3, 2 * reply["frac_over_0.02"])
                elif precision != "fp32" and reply["frac_over_0.02"] > allowed:
                    entry["error"] = (f"{100 * reply['frac_over_0.02']:.2g}% of the probabilities differ from our fp32 by "
                                      f"over 0.02 (allowed: {100 * allowed:.2g}%)")
            for r in range(a.rounds):
                for name, precision, w in contenders:
                    entry = row[(name, precision)]
                    if entry.get("error"):
                        continue
                    print(f"{mode} batch {batch} round {r + 1}: {name} {precision}", flush=True)
                    if w is None:
                        # A failure of ours is a row of the table, not the end
                        # of a run that has taken tens of minutes.
                        try:
                            o = ours(a, mode, batch, precision, iters, 1)
                        except CommandFailed as e:
                            entry["error"] = str(e).strip().splitlines()[0]
                            print(e, file=sys.stderr, flush=True)
                            continue
                        entry["ms"].append(o["latency_ms"]["p50"])
                        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], o["peak_rss_mb"])
                    else:
                        reply = w.ask(do="time", iters=iters, warmup=1 if r else 2)
                        if "error" in reply:
                            entry["error"] = reply["error"]
                            continue
                        entry["ms"] += reply["ms"]
                        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], reply["peak_rss_mb"])
                        entry["version"] = reply["version"]
            for _, _, w in contenders:
                if w:
                    w.close()
            for entry in row.values():
                if entry["ms"]:
                    entry["p50_ms"] = statistics.median(entry["ms"])
                    entry["images_per_s"] = batch * 1000 / entry["p50_ms"]
                results.append(entry)
        for precision, why in a.refused.items():
            if not (mode == "train" and precision == "int8"):
                results.append({"engine": "ours", "precision": precision, "mode": mode, "batch": batch, "ms": [],
                                "peak_rss_mb": 0, "error": f"refused ({why}); peers not run at {precision}"})

    print(f"\n{'row':<10} {'engine':<15} {'prec':<5} {'img/s':>8} {'p50 ms':>9} {'peak MB':>8} {'ours/engine':>11} {'>0.02 of fp32':>13}  note")
    for e in results:
        best_ours = next((o for o in results if o["engine"] == "ours" and o["precision"] == e["precision"] and
                          o["mode"] == e["mode"] and o["batch"] == e["batch"] and "images_per_s" in o), None)
        ratio = (best_ours["images_per_s"] / e["images_per_s"]) if best_ours and "images_per_s" in e else None
        share = e.get("frac_over_0.02")
        print(f"{e['mode'] + str(e['batch']):<10} {e['engine']:<15} {e['precision']:<5} "
              f"{e.get('images_per_s', float('nan')):>8.2f} {e.get('p50_ms', float('nan')):>9.1f} "
              f"{e['peak_rss_mb']:>8.0f} {ratio if ratio else float('nan'):>11.2f} "
              f"{'' if share is None else f'{100 * share:.3f}%':>13}  {e.get('error', '')}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                       "threads": a.threads, "image_size": a.image_size, "rounds": a.rounds, "results": results},
                      f, indent=2)


if __name__ == "__main__":
    main()
