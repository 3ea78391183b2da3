"""The Python module: its probabilities equal `predict`'s, its answers are
those of the library's inspect, errors are Python exceptions with the
library's message, train() and evaluate() report progress through callbacks,
and the operating threshold stored by evaluate is what Model uses.

Run by run_pytest.py (ctest: Python.pytest), which puts build/python on the path.
"""
import os
import subprocess

import numpy as np
import pytest

import unetind

BUILD = os.environ["UNETIND_BUILD_DIR"]
SOURCE = os.environ["UNETIND_SOURCE_DIR"]
CLI = os.path.join(BUILD, "bin", "unet-industrial")
DAGM = os.path.join(SOURCE, "..", "shared", "fixtures", "dagm2007", "Class1", "Test", "0002.PNG")


def cli(*args):
    done = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """An initialised (untrained) TinyUNet, written by the CLI."""
    path = str(tmp_path_factory.mktemp("model") / "w.safetensors")
    cli("init", "--out", path, "--seed", "4")
    return path


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    """A real DAGM image where ../shared is there, else a PNG written by the CLI's synth."""
    if os.path.exists(DAGM):
        return DAGM
    data = tmp_path_factory.mktemp("synth")
    cli("synth", "--out", str(data), "--class", "1", "--size", "512", "--train-defective", "0", "--train-ok", "1",
        "--test-defective", "1", "--test-ok", "0")
    return str(data / "Class1" / "Test" / "0001.PNG")


@pytest.fixture(scope="module")
def predicted(weights, image_path, tmp_path_factory):
    """predict's outputs for the image: the probabilities and the CSV row."""
    out = tmp_path_factory.mktemp("predict")
    cli("predict", "--model", weights, "--out", str(out), image_path)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    probs = np.load(out / f"{stem}_prob.npy")
    row = (out / "predictions.csv").read_text().splitlines()[1].rsplit(",", 3)
    return probs, float(row[1]), int(row[2]), row[3] == "1"


@pytest.fixture(scope="module")
def model(weights):
    return unetind.Model(weights)


def test_call_gives_predicts_probabilities(model, image_path, predicted):
    pixels = unetind.read_image(image_path)
    assert pixels.shape == (512, 512) and pixels.dtype == np.float32
    images = (pixels / np.float32(127.5) - np.float32(1.0)).reshape(1, 512, 512, 1)
    probs = model(images)
    assert probs.shape == (1, 512, 512, 1) and probs.dtype == np.float32
    assert np.abs(probs[0, :, :, 0] - predicted[0]).max() <= 1e-6


def test_predict_gives_predicts_answer(model, image_path, predicted):
    pixels = unetind.read_image(image_path).astype(np.uint8)
    r = model.predict(np.stack([pixels, pixels]))
    probs, score, defect_pixels, defective = predicted
    assert r["probabilities"].shape == (2, 512, 512)
    assert np.abs(r["probabilities"][1] - probs).max() <= 1e-6
    assert r["scores"][0] == pytest.approx(score, abs=1e-6)  # the CSV has 6 decimals
    assert r["defect_pixels"][0] == defect_pixels
    assert bool(r["decisions"][0]) == defective
    assert r["threshold"] == 0.5
    assert np.array_equal(r["masks"][0], np.where(r["probabilities"][0] > 0.5, 255, 0).astype(np.uint8))


def test_images_of_any_size_and_layout(model):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(3, 40, 70), dtype=np.uint8)
    r = model.predict(small)
    assert r["probabilities"].shape == (3, 40, 70) and r["masks"].shape == (3, 40, 70)
    assert r["scores"].shape == (3,) and r["decisions"].dtype == np.bool_
    assert r["scores"][2] == pytest.approx(r["probabilities"][2].max())
    # N x H x W x 1 as the TF-Hub layout, and a non-contiguous view, give the same.
    assert np.array_equal(model.predict(small[..., None])["probabilities"], r["probabilities"])
    wide = np.repeat(small, 2, axis=2)[:, :, ::2]
    assert np.array_equal(model.predict(wide)["probabilities"], r["probabilities"])
    # The float interface crops or pads to the model's size, as the reference.
    scaled = small.astype(np.float32)[..., None] / np.float32(127.5) - np.float32(1.0)
    assert model(scaled).shape == (3, 512, 512, 1)


def test_errors_are_exceptions_with_the_librarys_message(model, weights, tmp_path):
    missing = str(tmp_path / "missing.safetensors")
    with pytest.raises(unetind.Error, match="missing.safetensors"):
        unetind.Model(missing)
    with pytest.raises(unetind.Error, match="fp64"):
        unetind.Model(weights, precision="fp64")
    with pytest.raises(ValueError, match="N x H x W"):
        model(np.zeros((512, 512), dtype=np.float32))
    with pytest.raises(ValueError, match="not finite"):
        model(np.full((1, 512, 512, 1), np.nan, dtype=np.float32))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(unetind.Error, match="bad.png"):
        unetind.read_image(str(bad))
    with pytest.raises(unetind.Error, match="threshold"):
        model.predict(np.zeros((1, 8, 8), dtype=np.uint8), threshold=1.5)


def test_train_and_evaluate_report_progress_and_the_threshold_travels(tmp_path):
    data = tmp_path / "data"
    cli("synth", "--out", str(data), "--class", "1", "--size", "64", "--train-defective", "2", "--train-ok", "0",
        "--test-defective", "3", "--test-ok", "3")
    steps = []
    logs = []
    result = unetind.train(str(data), str(tmp_path / "run"), steps=3, batch=2, image_size=64, augment=False,
                           checkpoint_every=3, progress=lambda step, total: steps.append((step, total)),
                           log=logs.append)
    assert result["steps"] == 3 and not result["interrupted"]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert logs and logs[-1]["step"] == 3 and np.isfinite(logs[-1]["loss"])

    weights = result["model"]
    done = []
    report = unetind.evaluate(str(data), weights, image_size=64, set_threshold="best-f1",
                              progress=lambda d, total: done.append((d, total)))
    assert done[-1] == (6, 6)
    assert len(report["images"]) == 6
    assert report["operating_threshold"] == pytest.approx(report["best_f1"]["threshold"], rel=1e-6)
    m = unetind.Model(weights, image_size=64)
    assert m.threshold == pytest.approx(report["operating_threshold"], rel=1e-7)
    assert m.threshold_source.startswith("the model file: ")
    assert "best-f1" in m.threshold_source
    given = unetind.Model(weights, image_size=64, threshold=0.25)
    assert given.threshold == 0.25 and given.threshold_source == "Model(threshold=...)"
    m.threshold = 0.75
    assert m.predict(np.zeros((1, 64, 64), dtype=np.uint8))["threshold"] == 0.75


def test_a_failing_callback_stops_the_job(tmp_path):
    data = tmp_path / "data"
    cli("synth", "--out", str(data), "--class", "1", "--size", "32", "--train-defective", "2", "--train-ok", "0",
        "--test-defective", "1", "--test-ok", "1")

    def fail(step, total):
        raise RuntimeError(f"stop at {step}")

    with pytest.raises(RuntimeError, match="stop at 1"):
        unetind.train(str(data), str(tmp_path / "run"), steps=5, batch=2, image_size=32, progress=fail)
