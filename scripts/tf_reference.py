#!/usr/bin/env python3
"""TensorFlow's own answers for TinyUNet: the fixtures under tests/data/tf/.

TinyUNet (SPEC.md section 1) and NVIDIA's training recipe (section 2) built in
TensorFlow's graph mode (tf.compat.v1) with NVIDIA's variable names under
UNet_v1/, and TensorFlow's ops for every step: tf.nn.conv2d(padding="SAME"),
tf.nn.max_pool2d, tf.compat.v1.image.resize_nearest_neighbor(align_corners=True),
tf.image.resize_with_crop_or_pad, tf.nn.sigmoid_cross_entropy_with_logits and
tf.compat.v1.train.RMSPropOptimizer(centered=True) under a staircase
tf.compat.v1.train.exponential_decay. Nothing here comes from our C++ code.

Run (TensorFlow only makes these fixtures; the build and the tests never need it):
    python3 -m venv build/tf-venv
    build/tf-venv/bin/pip install tensorflow-cpu numpy
    build/tf-venv/bin/python scripts/tf_reference.py [--dagm DAGM_ROOT] [OUT]
OUT defaults to tests/data/tf, DAGM_ROOT to ../shared/fixtures/dagm2007 beside
the clone. Everything in OUT but its README.md is deleted and written afresh
(README.md there describes each file). TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's own Eigen kernels, not
oneDNN, which our CPU backend uses, so the reference shares no kernel with us.

From one seed:
  weights: TF's he_uniform (variance scaling 2.0, fan_in, uniform), the
    initialiser NVIDIA's scripts pass, and uniform biases in [-0.05, 0.05]
    (NVIDIA starts biases at 0; non-zero ones make the bias import matter).
    Every value is then rounded to a coarse power-of-two grid (a quarter of the
    largest power of two below the tensor's limit) so that the three copies of
    the weights compress to about 1 MB each; the network is still a random
    He-scaled TinyUNet.
  tf1/: tf.compat.v1.train.Saver's checkpoint of the training graph at
    global_step 3 (model.ckpt-3.index, .data-00000-of-00001, `checkpoint`,
    which names it by the absolute path of the folder it was saved in):
    the weights, the centred RMSProp slots under the names TF gives them
    (optimizers/<var>/RMSProp, _1, _2: ms, mg, momentum), and
    optimizers/global_step. The slots hold set values (periodic patterns, so
    the file stays small), not trained ones.
  saved_model/: a SavedModel of the inference graph with the TF-Hub module's
    signature "default": input `images` N x H x W x 1 in [-1, 1], output
    `default`, the probabilities N x 512 x 512 x 1.
  tf2/: tf.train.Checkpoint of the same weights held by a tf.Module in a list,
    so its keys (model/convs/<i>/kernel/.ATTRIBUTES/VARIABLE_VALUE) differ
    from the variables' names, which only the object graph records.
  inputs/, probs/: TF's probabilities ([512, 512] float32 .npy) of the
    inference graph on a real DAGM image (Class1/Test/0002.PNG, 512x512, not
    copied here), an odd 601x421 PNG (cropped in width, padded in height, odd
    differences both) and a small 96x64 PNG (padded in both).
  tf1_many/: a Saver checkpoint of MANY_VARIABLES small variables
    (block_<i % 7>/layer_<i>/kernel = [i, -i]), enough for TensorFlow to write
    its index in two data blocks (it starts a new one past 256 KiB; the UNet's
    index fits in one). TensorFlow 2.21 writes every block uncompressed; the
    snappy blocks of older writers are checked on ../shared/fixtures.
  train/: two 512x512 PNG images with soft-edged masks (a folder data set).
  expected.safetensors: NVIDIA's recipe (adaptive loss, weight decay 1e-5,
    centred RMSProp rho 0.9, momentum 0.8, eps 1e-10, lr 1e-4 decayed by 0.8
    every 2 steps, staircase, so that the decay happens within the run) on the
    batch of train/:
      fresh/loss [5], fresh/reconstruction [5], fresh/l2 [5], fresh/lr [5],
      fresh/dice_branch [5] (1 where adaptive_loss took 1 - Dice): five steps
        from the weights of tf1/ with fresh slots (ms 1, mg 0, mom 0) and
        global_step 0, as `train --init-from` starts;
      fresh/<var>: the weights after the five steps;
      resumed/loss [2], ..., resumed/<var>: two steps continuing tf1/ as it
        stands (its slots, global_step 3), as `train --resume` after `import
        --run-dir` continues it;
      idx/<var>: sorted flat indices (exact in float32) where a large tensor's
        values are kept: a <var> tensor with SAMPLE values and an idx/<var> is
        that sample, any other is in full.
"""

import argparse
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fixture_io import check_written, write_safetensors  # noqa: E402

v1 = tf.compat.v1

SEED = 13
SIZE = 512
BATCH = 2
FRESH_STEPS = 5
RESUME_AT, RESUMED_STEPS = 3, 2
LR, LR_DECAY_STEPS, LR_DECAY_FACTOR = 1e-4, 2, 0.8
RHO, MOMENTUM, EPSILON = 0.9, 0.8, 1e-10
WEIGHT_DECAY = 1e-5
ADAPTIVE_SWITCH = 0.3
BIAS_LIMIT = 0.05
SAMPLE = 2048
MANY_VARIABLES = 9000
DAGM_IMAGE = "Class1/Test/0002.PNG"
ODD_SIZE, SMALL_SIZE = (601, 421), (96, 64)  # width x height

INPUT, BLOCKS, BOTTLENECK, OUTPUT = 32, [32, 64, 128], 256, 32


# ---------------------------------------------------------------- the model

def conv(x, scope, k, filters, relu=True):
    with v1.variable_scope(scope):
        cin = int(x.shape[-1])
        # he_uniform, the initialiser NVIDIA's scripts pass.
        he_uniform = v1.initializers.variance_scaling(scale=2.0, mode="fan_in", distribution="uniform")
        kernel = v1.get_variable("kernel", [k, k, cin, filters], tf.float32, he_uniform)
        bias = v1.get_variable("bias", [filters], tf.float32, v1.initializers.random_uniform(-BIAS_LIMIT, BIAS_LIMIT))
    y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides=1, padding="SAME"), bias)
    return tf.nn.relu(y) if relu else y


def pool(x):
    return tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")


def up2x(x):
    h, w = int(x.shape[1]), int(x.shape[2])
    return v1.image.resize_nearest_neighbor(x, [2 * h, 2 * w], align_corners=True)


def two_convs(x, scope, first, second):
    return conv(conv(x, scope + "/conv2d", 3, first), scope + "/conv2d_1", 3, second)


def tiny_unet(images):
    """images: N x H x W x 1 in [-1, 1]; returns (probabilities, logits), N x 512 x 512 x 1."""
    with v1.variable_scope("UNet_v1"):
        x = tf.image.resize_with_crop_or_pad(images, SIZE, SIZE)
        skips = []
        x = two_convs(x, "input_block", INPUT, INPUT)
        skips.append(x)
        x = pool(x)
        for i, f in enumerate(BLOCKS):
            x = two_convs(x, f"downsample_block_{i + 1}", f, f)
            skips.append(x)
            x = pool(x)
        x = two_convs(x, "bottleneck_block", BOTTLENECK, BOTTLENECK)
        x = conv(up2x(x), "bottleneck_block/deconv2d/conv2d", 2, BOTTLENECK // 2)
        for i, f in enumerate(reversed(BLOCKS)):
            scope = f"upsample_block_{i + 1}"
            x = tf.concat([x, skips.pop()], axis=3)
            x = two_convs(x, scope, f, f // 2)
            x = conv(up2x(x), scope + "/deconv2d/conv2d", 2, f // 2)
        x = tf.concat([x, skips.pop()], axis=3)
        x = two_convs(x, "ouputs_block", OUTPUT, OUTPUT)
        logits = conv(x, "ouputs_block/conv2d_2", 1, 1, relu=False)
        return tf.sigmoid(logits), logits


def model_variables():
    return [v for v in v1.global_variables() if v.op.name.startswith("UNet_v1/")]


# ---------------------------------------------------------------- weights

def rounded_weights(sess, variables):
    """The variables' initial values rounded to a coarse grid: a quarter of the
    largest power of two below the initialiser's limit."""
    out = {}
    for v in variables:
        shape = v.shape.as_list()
        limit = np.sqrt(6.0 / (shape[0] * shape[1] * shape[2])) if v.op.name.endswith("/kernel") else BIAS_LIMIT
        step = 2.0 ** (np.floor(np.log2(limit)) - 2)
        out[v.op.name] = (np.round(sess.run(v) / step) * step).astype(np.float32)
    return out


def periodic(shape, period, values):
    """A slot value that depends on the flat index modulo `period`."""
    n = int(np.prod(shape))
    return np.asarray(values, np.float32)[np.arange(n) % period % len(values)].reshape(shape)


def set_slots(var):
    """Distinct, valid RMSProp state (ms > mg^2) for the resume checkpoint."""
    shape = var.shape.as_list()
    return {
        "RMSProp": periodic(shape, 7, [0.5 + j / 16 for j in range(7)]),                  # ms
        "RMSProp_1": periodic(shape, 11, [(j - 5) * 2.0 ** -10 for j in range(11)]),      # mg
        "RMSProp_2": periodic(shape, 13, [(j - 6) * 2.0 ** -19 for j in range(13)]),      # momentum
    }


# ---------------------------------------------------------------- inputs

def texture(rng, width, height, defect=None):
    """A DAGM-like 8-bit texture: oriented waves, noise and an optional dark ellipse."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = 128 + 40 * np.sin(0.11 * xx + 0.07 * yy) + 25 * np.sin(0.023 * xx - 0.05 * yy) + rng.normal(0, 12, (height, width))
    mask = np.zeros((height, width))
    if defect:
        cy, cx, ry, rx = defect
        r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        mask = np.clip((1.2 - r) / 0.4, 0, 1)  # 1 inside r < 0.8, 0 beyond 1.2
        img -= 60 * mask
    return np.clip(np.round(img), 0, 255).astype(np.uint8), np.round(255 * mask).astype(np.uint8)


def write_png(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(pixels[..., None]))


def read_png(path):
    return tf.io.decode_png(tf.io.read_file(path), channels=1).numpy()[..., 0]


def scaled(pixels):
    """x/127.5 - 1 in float32, as TF computes it."""
    return (tf.cast(pixels, tf.float32) / 127.5 - 1.0).numpy()


# ---------------------------------------------------------------- training graph

def build_training(images, masks):
    probs, logits = tiny_unet(images)
    with v1.variable_scope("losses"):
        flat_p, flat_y = tf.reshape(probs, [-1]), tf.reshape(masks, [-1])
        dice = (2.0 * tf.reduce_sum(flat_y * flat_p) + 1.0) / (tf.reduce_sum(flat_p) + tf.reduce_sum(flat_y) + 1.0)
        dice_loss = 1.0 - dice
        take_dice = dice_loss < ADAPTIVE_SWITCH
        reconstruction = tf.cond(
            take_dice, lambda: dice_loss,
            lambda: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=masks, logits=logits)))
        l2 = tf.multiply(tf.add_n([tf.nn.l2_loss(v) for v in v1.trainable_variables()]), WEIGHT_DECAY)
        total = tf.add(reconstruction, l2)
    with v1.variable_scope("optimizers"):  # where NVIDIA's model builds its optimiser
        global_step = v1.train.get_or_create_global_step()
        lr = v1.train.exponential_decay(LR, global_step, LR_DECAY_STEPS, LR_DECAY_FACTOR, staircase=True)
        opt = v1.train.RMSPropOptimizer(lr, decay=RHO, momentum=MOMENTUM, epsilon=EPSILON, centered=True)
        train_op = opt.minimize(total, global_step=global_step, gate_gradients=v1.train.Optimizer.GATE_OP)
    return {"train_op": train_op, "loss": total, "reconstruction": reconstruction, "l2": l2, "lr": lr,
            "dice_branch": tf.cast(take_dice, tf.float32)}, opt, global_step


def save_tf1(sess, saver, out_dir, step):
    """Saver.save as a training machine does, then moved to `out_dir`: the
    `checkpoint` file keeps the absolute path of a folder that is gone, as
    NVIDIA's (/results/...) do once copied elsewhere, and the same on every
    machine."""
    staging = os.path.join("/tmp", "unetind-tf-reference", os.path.basename(out_dir))
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    saver.save(sess, os.path.join(staging, "model.ckpt"), global_step=step, write_meta_graph=False)
    shutil.move(staging, out_dir)


def run_steps(sess, fetches, feed, steps):
    logs = {k: [] for k in ("loss", "reconstruction", "l2", "lr", "dice_branch")}
    for _ in range(steps):
        out = sess.run(fetches, feed)
        for k in logs:
            logs[k].append(out[k])
        print(f"  step: loss {out['loss']:.7g} (recon {out['reconstruction']:.7g}, l2 {out['l2']:.7g}), "
              f"lr {out['lr']:.3g}, dice branch {bool(out['dice_branch'])}")
    return {k: np.asarray(v, np.float32) for k, v in logs.items()}


def sample(name, value, idx):
    return value.reshape(-1)[idx[name]] if name in idx else value


# ---------------------------------------------------------------- main

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=os.path.join(here, "..", "tests", "data", "tf"))
    parser.add_argument("--dagm", default=os.path.join(here, "..", "..", "shared", "fixtures", "dagm2007"))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    dagm_path = os.path.join(args.dagm, DAGM_IMAGE)
    if not os.path.exists(dagm_path):
        sys.exit(f"{dagm_path}: the real DAGM image is needed (give --dagm DAGM_ROOT)")
    os.makedirs(out, exist_ok=True)
    for entry in os.listdir(out):  # all but the README, which says how the rest was made
        if entry != "README.md":
            path = os.path.join(out, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    rng = np.random.default_rng(SEED)

    # Inputs: the synthetic PNGs are written first and read back, so TF sees
    # exactly the bytes the tests give our code.
    odd, _ = texture(rng, *ODD_SIZE)
    small, _ = texture(rng, *SMALL_SIZE)
    write_png(os.path.join(out, "inputs", "odd_601x421.png"), odd)
    write_png(os.path.join(out, "inputs", "small_96x64.png"), small)
    for i, defect in enumerate([(300, 180, 40, 70), (120, 400, 55, 30)]):
        image, mask = texture(rng, SIZE, SIZE, defect)
        write_png(os.path.join(out, "train", "images", f"{i}.png"), image)
        write_png(os.path.join(out, "train", "masks", f"{i}.png"), mask)
    predict_inputs = {
        "dagm_class1_test_0002": scaled(read_png(dagm_path)),
        "odd_601x421": scaled(read_png(os.path.join(out, "inputs", "odd_601x421.png"))),
        "small_96x64": scaled(read_png(os.path.join(out, "inputs", "small_96x64.png"))),
    }
    train_images = np.stack([scaled(read_png(os.path.join(out, "train", "images", f"{i}.png"))) for i in range(BATCH)])
    train_masks = np.stack([(tf.cast(read_png(os.path.join(out, "train", "masks", f"{i}.png")), tf.float32) / 255.0)
                            .numpy() for i in range(BATCH)])

    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(SEED)
        images_ph = v1.placeholder(tf.float32, [BATCH, SIZE, SIZE, 1], name="train_images")
        masks_ph = v1.placeholder(tf.float32, [BATCH, SIZE, SIZE, 1], name="train_masks")
        fetches, opt, global_step = build_training(images_ph, masks_ph)
        params = model_variables()
        assert sum(int(np.prod(v.shape)) for v in params) == 1850305
        slots = {(v.op.name, s): opt.get_slot(v, k) for v in params for s, k in
                 [("RMSProp", "rms"), ("RMSProp_1", "mg"), ("RMSProp_2", "momentum")]}
        for (name, s), var in slots.items():
            assert var.op.name == f"optimizers/{name}/{s}", var.op.name
        saver = v1.train.Saver(max_to_keep=None)
        feed = {images_ph: train_images[..., None], masks_ph: train_masks[..., None]}

        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            weights = rounded_weights(sess, params)
            for v in params:
                v.load(weights[v.op.name], sess)

            # The resume checkpoint: the weights, set slots, global_step 3.
            for (name, s), var in slots.items():
                var.load(set_slots(var)[s], sess)
            global_step.load(RESUME_AT, sess)
            save_tf1(sess, saver, os.path.join(out, "tf1"), RESUME_AT)

            print(f"resumed: {RESUMED_STEPS} steps from global_step {RESUME_AT}")
            resumed = run_steps(sess, fetches, feed, RESUMED_STEPS)
            resumed_weights = {v.op.name: sess.run(v) for v in params}

            print(f"fresh: {FRESH_STEPS} steps from the same weights, TF1's initial slots")
            sess.run(v1.variables_initializer([*slots.values(), global_step]))
            for v in params:
                v.load(weights[v.op.name], sess)
            fresh = run_steps(sess, fetches, feed, FRESH_STEPS)
            fresh_weights = {v.op.name: sess.run(v) for v in params}
    names = [v.op.name for v in params]

    # The inference graph as a SavedModel with the TF-Hub module's signature,
    # and its probabilities on the three inputs.
    probs = {}
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, None, None, 1], name="images")
        prob, _ = tiny_unet(images)
        with v1.Session(graph=graph) as sess:
            for v in model_variables():
                v.load(weights[v.op.name], sess)
            for key, image in predict_inputs.items():
                probs[key] = sess.run(prob, {images: image[None, ..., None]})[0, ..., 0]
                os.makedirs(os.path.join(out, "probs"), exist_ok=True)
                np.save(os.path.join(out, "probs", key + ".npy"), probs[key].astype(np.float32))
                print(f"probs/{key}: min {probs[key].min():.4f} max {probs[key].max():.4f} "
                      f"mean {probs[key].mean():.4f}")
            builder = v1.saved_model.Builder(os.path.join(out, "saved_model"))
            signature = v1.saved_model.predict_signature_def(inputs={"images": images}, outputs={"default": prob})
            builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING],
                                                 signature_def_map={"default": signature})
            builder.save()

    # The TF2 object-based checkpoint: eager variables with the same names,
    # held in a list, so the keys follow the object path instead.
    module = tf.Module()
    module.convs = [tf.Module() for _ in range(len(names) // 2)]
    for i, conv_module in enumerate(module.convs):
        scope = names[2 * i].rsplit("/", 1)[0]
        conv_module.kernel = tf.Variable(weights[scope + "/kernel"], name=scope + "/kernel")
        conv_module.bias = tf.Variable(weights[scope + "/bias"], name=scope + "/bias")
    tf.train.Checkpoint(model=module).save(os.path.join(out, "tf2", "ckpt"))

    # Enough variables for an index of several blocks.
    graph = tf.Graph()
    with graph.as_default():
        for i in range(MANY_VARIABLES):
            v1.get_variable(f"block_{i % 7}/layer_{i:04d}/kernel", initializer=np.array([i, -i], np.float32))
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            save_tf1(sess, v1.train.Saver(), os.path.join(out, "tf1_many"), 1)

    # The expectations.
    idx = {}
    for name in names:
        n = weights[name].size
        if n > SAMPLE:
            idx[name] = np.sort(rng.choice(n, SAMPLE, replace=False))
    assert all(i < 2 ** 24 for v in idx.values() for i in v)
    expected = {}
    for run, logs, final in [("fresh", fresh, fresh_weights), ("resumed", resumed, resumed_weights)]:
        for k, v in logs.items():
            expected[f"{run}/{k}"] = v
        for name in names:
            expected[f"{run}/{name}"] = sample(name, final[name], idx)
    for name, i in idx.items():
        expected["idx/" + name] = i.astype(np.float32)
    metadata = {
        "format": "unetind-tf-reference", "version": "1", "generator": "scripts/tf_reference.py",
        "tensorflow": tf.__version__, "numpy": np.__version__, "seed": str(SEED), "batch": str(BATCH),
        "size": str(SIZE), "sample": str(SAMPLE), "fresh_steps": str(FRESH_STEPS), "resume_at": str(RESUME_AT),
        "resumed_steps": str(RESUMED_STEPS), "lr": repr(LR), "lr_decay_steps": str(LR_DECAY_STEPS),
        "lr_decay_factor": repr(LR_DECAY_FACTOR), "rmsprop_decay": repr(RHO), "rmsprop_momentum": repr(MOMENTUM),
        "rmsprop_epsilon": repr(EPSILON), "weight_decay": repr(WEIGHT_DECAY), "loss": "adaptive_loss",
        "dagm_image": DAGM_IMAGE,
    }
    path = os.path.join(out, "expected.safetensors")
    write_safetensors(path, expected, metadata)
    check_written(path, expected)

    total = 0
    for root, _, files in os.walk(out):
        for f in sorted(files):
            if f == "README.md":
                continue
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"  {os.path.relpath(p, out)}: {os.path.getsize(p)} bytes")
    print(f"wrote {out}: {total} bytes, TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
