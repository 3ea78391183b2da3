"""NVIDIA's own Python client (tritonclient[http], from PyPI) against our
server: liveness, readiness, model metadata and an inference with binary
tensors, whose probabilities must equal `predict`'s for the same real DAGM
image and weights within 1e-6. Then the same inference with JSON tensors,
sent with curl. Runs itself in a virtual environment under the build
directory (made on first use); skips visibly where PyPI cannot be reached.

    python3 tests/serve/test_tritonclient.py CLI BUILD_DIR [SHARED_DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

cli, build_dir, shared = harness.paths()
image = harness.dagm_image(shared)
python = harness.venv_python(build_dir, "serve-venv", ["tritonclient[http]", "numpy", "pillow"])
if os.environ.get("UNETIND_IN_VENV") != python:
    # Run the rest inside the virtual environment.
    os.environ["UNETIND_IN_VENV"] = python
    sys.exit(subprocess.call([python, __file__, *sys.argv[1:]]))

import numpy as np  # noqa: E402
import tritonclient.http as triton  # noqa: E402
from PIL import Image  # noqa: E402

work = tempfile.mkdtemp(prefix="unetind-triton-")
weights = os.path.join(work, "class1.safetensors")
harness.run([cli, "init", "--out", weights, "--seed", "4"])
harness.run([cli, "predict", "--model", weights, "--out", os.path.join(work, "pred"), image])
expected = np.load(os.path.join(work, "pred", "0002_prob.npy"))
pixels = np.array(Image.open(image))  # 512 x 512 uint8, read by Pillow, not by us
assert pixels.shape == (512, 512) and pixels.dtype == np.uint8, pixels.shape

with harness.Server(cli, ["--model", f"class1={weights}"], os.path.join(work, "serve.log")) as server:
    client = triton.InferenceServerClient(f"{server.host}:{server.port}")
    assert client.is_server_live(), "is_server_live"
    assert client.is_server_ready(), "is_server_ready"
    assert client.is_model_ready("class1"), "is_model_ready"
    assert not client.is_model_ready("class9"), "an unknown model is ready"
    meta = client.get_model_metadata("class1")
    assert meta["name"] == "class1" and meta["inputs"][0]["name"] == "images", meta
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "mask", "defect_score", "is_defective"], meta
    config = client.get_model_config("class1")
    assert config["max_batch_size"] == 8, config

    # FP32 in [-1, 1], the TF-Hub module's interface, as binary tensors.
    images = triton.InferInput("images", [1, 512, 512, 1], "FP32")
    images.set_data_from_numpy((pixels.astype(np.float32) / 127.5 - 1.0).reshape(1, 512, 512, 1))
    outputs = [triton.InferRequestedOutput(n, binary_data=True) for n in ("probabilities", "defect_score", "is_defective")]
    result = client.infer("class1", [images], outputs=outputs)
    probs = result.as_numpy("probabilities")
    assert probs.shape == (1, 512, 512, 1), probs.shape
    diff = float(np.abs(probs[0, :, :, 0] - expected).max())
    print(f"tritonclient, FP32 binary: largest difference from predict's probabilities {diff:.3g}")
    assert diff <= 1e-6, diff
    assert abs(float(result.as_numpy("defect_score")[0]) - float(expected.max())) <= 1e-6
    assert bool(result.as_numpy("is_defective")[0]) == bool(expected.max() > 0.5)

    # UINT8 raw pixels, the server scales them; every output, binary by default.
    raw = triton.InferInput("images", [1, 512, 512, 1], "UINT8")
    raw.set_data_from_numpy(pixels.reshape(1, 512, 512, 1))
    result = client.infer("class1", [raw])
    diff = float(np.abs(result.as_numpy("probabilities")[0, :, :, 0] - expected).max())
    print(f"tritonclient, UINT8 binary: largest difference {diff:.3g}")
    assert diff <= 1e-6, diff
    mask = result.as_numpy("mask")[0, :, :, 0]
    assert ((mask == 255) == (expected > 0.5)).all(), "mask"

    # An error answer reaches the client as an exception with our message.
    try:
        wrong = triton.InferInput("pixels", [1, 4, 4, 1], "UINT8")
        wrong.set_data_from_numpy(np.zeros((1, 4, 4, 1), np.uint8))
        client.infer("class1", [wrong])
        sys.exit("a request with a wrong input name succeeded")
    except triton.InferenceServerException as e:
        assert "takes one input, 'images'" in str(e), str(e)

    # The same inference as JSON tensors, sent with curl.
    request = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 512, 512, 1],
                           "data": pixels.reshape(-1).tolist()}],
               "outputs": [{"name": "probabilities"}, {"name": "defect_score"}]}
    body = os.path.join(work, "request.json")
    with open(body, "w") as f:
        json.dump(request, f)
    reply = harness.run(["curl", "-sS", "--fail-with-body", "-d", f"@{body}",
                         f"{server.url}/v2/models/class1/infer"])
    answer = json.loads(reply)
    by_name = {o["name"]: o for o in answer["outputs"]}
    curl_probs = np.array(by_name["probabilities"]["data"], dtype=np.float32).reshape(512, 512)
    diff = float(np.abs(curl_probs - expected).max())
    print(f"curl, UINT8 JSON: largest difference {diff:.3g}")
    assert diff <= 1e-6, diff
    assert by_name["probabilities"]["shape"] == [1, 512, 512, 1]

print("OK: tritonclient and curl agree with predict")
