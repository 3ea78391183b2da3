#!/usr/bin/env python3
"""Golden fixture for the training path: TinyUNet (SPEC.md section 1) in
PyTorch, written from the spec independently of the C++ code, with the losses,
weight decay and one centered-RMSProp step of SPEC.md section 2.

Run:  /usr/bin/python3 scripts/make_golden.py [out]   (torch 1.13, CPU)
      default out: tests/data/golden_tinyunet.safetensors

Everything is computed in float64 from float32 inputs and parameters, and
stored as float32. The file is re-read after writing and compared bit for bit.

Layout (safetensors, all F32; "<p>" is one of the 46 TF parameter names, e.g.
UNet_v1/input_block/conv2d/kernel, HWIO kernels):
  <p>                           the parameters (seeded, see make_parameters)
  input     [2, 32, 32, 1]      image in [-1, 1] (x/127.5 - 1 of 8-bit pixels)
  mask      [2, 32, 32, 1]      mask in [0, 1]: one ellipse per image, soft edge
  logits    [2, 32, 32, 1]      network output at 32x32 (no crop/pad to 512)
  loss_recon/<kind> [1]         reconstruction loss of logits vs mask, for all
                                five kinds: adaptive_loss, x-entropy,
                                dice_sorensen, dice_jaccard, l2_loss
  dlogits/<kind> [2, 32, 32, 1] d(loss_recon/<kind>)/d(logits)
  loss_l2   [1]                 weight decay 1e-5 * sum(v^2) / 2 over all 46
  loss/<kind> [1]               loss_recon + loss_l2, kind in {adaptive_loss,
                                dice_sorensen}; adaptive_loss takes its
                                x-entropy branch here (1 - Dice >= 0.3)
  grad/<kind>/<p>               d(loss/<kind>)/d(p), weight decay included
  step1/<p>                     p after one centered-RMSProp step on
                                grad/adaptive_loss (lr 1e-4, rho 0.9,
                                momentum 0.8, eps 1e-10, TF1 slots: ms = 1,
                                mg = 0, mom = 0)
  delta1/<p>                     p - step1/<p> in float64, i.e. the momentum
                                slot after the step: precise where step1's
                                float32 rounding hides a small update
  loss_step2 [1]                loss/adaptive_loss at the float32 step1 params
  idx/<p>   [4096]              sorted flat indices (exact in float32) of the
                                sample kept for a large tensor
A grad/, step1/ or delta1/ tensor is either full (the parameter's shape) or, when it
has 4096 values and idx/<p> exists, the values at idx/<p>. Kept in full:
  grad/adaptive_loss/<p>  when p has fewer than 50000 values
  grad/dice_sorensen/<p>, step1/<p>, delta1/<p>  when p has at most 4096 values
which keeps the file under 10 MB (the parameters alone are 7.4 MB).
Metadata: format "unetind-golden", version "1", and the settings above.
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from fixture_io import check_written, write_safetensors

SEED = 20070
BATCH, SIZE = 2, 32
WEIGHT_DECAY = 1e-5
# TF feeds the hyperparameters as float32 tensors; use those exact values.
LR = float(np.float32(1e-4))
RHO = float(np.float32(0.9))
MOMENTUM = float(np.float32(0.8))
EPSILON = float(np.float32(1e-10))
ADAPTIVE_SWITCH = 0.3
SAMPLE = 4096
FULL_GRAD_BELOW = 50000  # grad/adaptive_loss kept in full below this size
FULL_OTHER_UP_TO = SAMPLE  # grad/dice_sorensen, step1, delta1 kept in full up to this
KINDS = ["adaptive_loss", "x-entropy", "dice_sorensen", "dice_jaccard", "l2_loss"]
TRAINED_KINDS = ["adaptive_loss", "dice_sorensen"]

# (scope under UNet_v1/, kernel size, in, out, relu) in graph order.
INPUT, BLOCKS, BOTTLENECK, OUTPUT = 32, [32, 64, 128], 256, 32


def conv_plan():
    plan = [("input_block/conv2d", 3, 1, INPUT), ("input_block/conv2d_1", 3, INPUT, INPUT)]
    c = INPUT
    for i, f in enumerate(BLOCKS):
        plan += [(f"downsample_block_{i + 1}/conv2d", 3, c, f), (f"downsample_block_{i + 1}/conv2d_1", 3, f, f)]
        c = f
    plan += [("bottleneck_block/conv2d", 3, c, BOTTLENECK), ("bottleneck_block/conv2d_1", 3, BOTTLENECK, BOTTLENECK),
             ("bottleneck_block/deconv2d/conv2d", 2, BOTTLENECK, BOTTLENECK // 2)]
    c = BOTTLENECK // 2
    for i, f in enumerate(reversed(BLOCKS)):
        skip = f
        s = f"upsample_block_{i + 1}/"
        plan += [(s + "conv2d", 3, c + skip, f), (s + "conv2d_1", 3, f, f // 2), (s + "deconv2d/conv2d", 2, f // 2, f // 2)]
        c = f // 2
    plan += [("ouputs_block/conv2d", 3, c + INPUT, OUTPUT), ("ouputs_block/conv2d_1", 3, OUTPUT, OUTPUT),
             ("ouputs_block/conv2d_2", 1, OUTPUT, 1)]
    return [("UNet_v1/" + s, k, i, o) for s, k, i, o in plan]


def make_parameters(gen):
    """He-normal-like kernels (truncated at 2 sigma, TF's variance_scaling
    stddev correction) and small non-zero biases, so bias gradients and the
    weight decay on biases are exercised."""
    params = {}
    for scope, k, cin, cout in conv_plan():
        std = math.sqrt(2.0 / (k * k * cin)) / 0.87962566103423978
        z = torch.randn(k, k, cin, cout, generator=gen, dtype=torch.float64)
        while True:
            bad = z.abs() > 2
            if not bad.any():
                break
            z[bad] = torch.randn(int(bad.sum()), generator=gen, dtype=torch.float64)
        params[scope + "/kernel"] = (z * std).to(torch.float32)
        params[scope + "/bias"] = (0.05 * torch.randn(cout, generator=gen, dtype=torch.float64)).to(torch.float32)
    return params


def make_batch(gen):
    yy, xx = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                            indexing="ij")
    images, masks = [], []
    for cy, cx, ry, rx, freq in [(12.0, 18.0, 6.0, 4.0, 0.7), (20.0, 10.0, 5.0, 7.5, 1.1)]:
        r = torch.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        # Soft edge: 1 inside r < 0.8, falling linearly to 0 at r = 1.2.
        mask = ((1.2 - r) / 0.4).clamp(0.0, 1.0)
        texture = 128 + 50 * torch.sin(freq * xx + 0.3 * yy) + 20 * torch.randn(SIZE, SIZE, generator=gen,
                                                                                 dtype=torch.float64)
        pixels = (texture - 70 * mask).round().clamp(0, 255)
        images.append(pixels.to(torch.float32) / np.float32(127.5) - 1)
        masks.append(mask.to(torch.float32))
    return torch.stack(images)[..., None], torch.stack(masks)[..., None]


def conv(x, kernel, bias, k):
    """SAME convolution, stride 1, NCHW activations, HWIO kernel. TF's SAME
    pads k-1 in total, the smaller half before: 3x3 -> 1/1, 2x2 -> 0/1."""
    before = (k - 1) // 2
    after = k - 1 - before
    x = F.pad(x, (before, after, before, after))
    return F.conv2d(x, kernel.permute(3, 2, 0, 1), bias)


def up2x(x):
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def forward(params, image_nhwc):
    plan = {scope: k for scope, k, _, _ in conv_plan()}

    def c(x, scope, relu=True):
        scope = "UNet_v1/" + scope
        y = conv(x, params[scope + "/kernel"], params[scope + "/bias"], plan[scope])
        return F.relu(y) if relu else y

    x = image_nhwc.permute(0, 3, 1, 2)
    skips = []
    x = c(c(x, "input_block/conv2d"), "input_block/conv2d_1")
    skips.append(x)
    x = F.max_pool2d(x, 2, 2)
    for i in range(len(BLOCKS)):
        x = c(c(x, f"downsample_block_{i + 1}/conv2d"), f"downsample_block_{i + 1}/conv2d_1")
        skips.append(x)
        x = F.max_pool2d(x, 2, 2)
    x = c(c(x, "bottleneck_block/conv2d"), "bottleneck_block/conv2d_1")
    x = c(up2x(x), "bottleneck_block/deconv2d/conv2d")
    for i in range(len(BLOCKS)):
        s = f"upsample_block_{i + 1}/"
        x = torch.cat([x, skips.pop()], dim=1)
        x = c(c(x, s + "conv2d"), s + "conv2d_1")
        x = c(up2x(x), s + "deconv2d/conv2d")
    x = torch.cat([x, skips.pop()], dim=1)
    x = c(c(x, "ouputs_block/conv2d"), "ouputs_block/conv2d_1")
    x = c(x, "ouputs_block/conv2d_2", relu=False)
    return x.permute(0, 2, 3, 1)


def dice_coe(p, y, jaccard):
    union = (p * p).sum() + (y * y).sum() if jaccard else p.sum() + y.sum()
    return (2 * (y * p).sum() + 1) / (union + 1)


def recon_loss(kind, logits, y):
    """NVIDIA's utils/losses.py over the whole batch flattened."""
    p = torch.sigmoid(logits)
    if kind == "x-entropy":
        return F.binary_cross_entropy_with_logits(logits, y, reduction="mean")
    if kind == "l2_loss":
        return ((p - y) ** 2).sum() / 2
    if kind == "dice_sorensen":
        return 1 - dice_coe(p, y, jaccard=False)
    if kind == "dice_jaccard":
        return 1 - dice_coe(p, y, jaccard=True)
    if kind == "adaptive_loss":
        d = 1 - dice_coe(p, y, jaccard=False)
        return d if d.item() < ADAPTIVE_SWITCH else F.binary_cross_entropy_with_logits(logits, y, reduction="mean")
    raise ValueError(kind)


def l2_loss(params):
    return WEIGHT_DECAY * sum((v * v).sum() for v in params.values()) / 2


def total_loss(kind, params, image, mask):
    return recon_loss(kind, forward(params, image), mask) + l2_loss(params)


def rmsprop_step(params, grads):
    """TF1 ApplyCenteredRMSProp from freshly created slots (ms = 1, mg = 0,
    mom = 0): ms += (g^2 - ms)(1 - rho); mg += (g - mg)(1 - rho);
    mom = momentum mom + lr g / sqrt(ms - mg^2 + eps); w -= mom."""
    out = {}
    for name, w in params.items():
        g = grads[name]
        ms = torch.ones_like(w) + (g * g - 1) * (1 - RHO)
        mg = torch.zeros_like(w) + (g - 0) * (1 - RHO)
        mom = MOMENTUM * torch.zeros_like(w) + LR * g / torch.sqrt(ms - mg * mg + EPSILON)
        out[name] = w - mom
    return out


def sampled(name, values, idx, full):
    return values if full else values.reshape(-1)[idx[name]]


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden_tinyunet.safetensors")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    params32 = make_parameters(gen)
    image32, mask32 = make_batch(gen)
    assert sum(v.numel() for v in params32.values()) == 1850305

    params = {k: v.double().requires_grad_(True) for k, v in params32.items()}
    image, mask = image32.double(), mask32.double()

    out = {k: v.numpy() for k, v in params32.items()}
    out["input"], out["mask"] = image32.numpy(), mask32.numpy()

    idx = {}
    for name, v in params32.items():
        if v.numel() > SAMPLE:
            idx[name] = torch.randperm(v.numel(), generator=gen)[:SAMPLE].sort().values
            out["idx/" + name] = idx[name].to(torch.float32).numpy()
    assert all(float(np.float32(i)) == i for v in idx.values() for i in v.tolist())

    with torch.no_grad():
        logits = forward(params, image)
    out["logits"] = logits.numpy().astype(np.float32)
    # The losses of the stored (float32) logits, for the loss tests.
    for kind in KINDS:
        leaf = torch.from_numpy(out["logits"]).double().requires_grad_(True)
        value = recon_loss(kind, leaf, mask)
        (dlogits,) = torch.autograd.grad(value, leaf)
        out["loss_recon/" + kind] = np.array([value.item()], dtype=np.float32)
        out["dlogits/" + kind] = dlogits.numpy().astype(np.float32)
    with torch.no_grad():
        out["loss_l2"] = np.array([l2_loss(params).item()], dtype=np.float32)
    dice = 1 - dice_coe(torch.sigmoid(logits), mask, jaccard=False).item()
    assert dice >= ADAPTIVE_SWITCH, f"adaptive_loss should take its x-entropy branch, 1 - Dice = {dice}"

    grads = {}
    for kind in TRAINED_KINDS:
        loss = total_loss(kind, params, image, mask)
        g = torch.autograd.grad(loss, list(params.values()))
        grads[kind] = dict(zip(params.keys(), g))
        out["loss/" + kind] = np.array([loss.item()], dtype=np.float32)
        for name, gv in grads[kind].items():
            full = gv.numel() < FULL_GRAD_BELOW if kind == "adaptive_loss" else gv.numel() <= FULL_OTHER_UP_TO
            out[f"grad/{kind}/{name}"] = sampled(name, gv, idx, full).numpy().astype(np.float32)

    with torch.no_grad():
        step1 = rmsprop_step({k: v.detach() for k, v in params.items()}, grads["adaptive_loss"])
        step1_32 = {k: v.to(torch.float32) for k, v in step1.items()}
        for name, v in step1_32.items():
            full = v.numel() <= FULL_OTHER_UP_TO
            out["step1/" + name] = sampled(name, v, idx, full).numpy()
            delta = params[name].detach() - step1[name]
            out["delta1/" + name] = sampled(name, delta, idx, full).numpy().astype(np.float32)
        loss2 = total_loss("adaptive_loss", {k: v.double() for k, v in step1_32.items()}, image, mask)
        out["loss_step2"] = np.array([loss2.item()], dtype=np.float32)

    metadata = {
        "format": "unetind-golden", "version": "1", "model": "tinyUNet", "activation": "relu",
        "seed": str(SEED), "batch": str(BATCH), "size": str(SIZE), "weight_decay": repr(WEIGHT_DECAY),
        "lr": repr(LR), "rmsprop_decay": repr(RHO), "rmsprop_momentum": repr(MOMENTUM),
        "rmsprop_epsilon": repr(EPSILON), "rmsprop_centered": "true", "sample": str(SAMPLE),
        "generator": "scripts/make_golden.py, torch " + torch.__version__,
    }
    write_safetensors(out_path, out, metadata)

    check_written(out_path, out)
    size = os.path.getsize(out_path)
    assert size < 10_000_000, f"{out_path} is {size} bytes"
    print(f"wrote {out_path}: {len(out)} tensors, {size} bytes")
    print(f"logits mean {logits.mean():.4f} std {logits.std():.4f}; 1 - Dice {dice:.4f}")
    for k in sorted(k for k in out if k.startswith("loss")):
        print(f"  {k} = {out[k][0]:.9g}")


if __name__ == "__main__":
    main()
