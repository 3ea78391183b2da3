"""`pip install .` in a fresh virtual environment, as a user would, then
`import unetind` there and one inference checked against the CLI's
`predict` (`make check-pip-install`).

usage: check_pip_install.py BUILD_DIR SOURCE_DIR
The environment is BUILD_DIR/pip-venv, made anew each run. pip fetches
scikit-build-core and NumPy from PyPI and compiles the library in its own
build directory (minutes on 2 cores), so this is not part of `make test`,
where nothing downloads. The CLI of BUILD_DIR (built by `make`) writes the
weights and predict's probabilities to compare with.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv

build_dir, source_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
cli = os.path.join(build_dir, "bin", "unet-industrial")
env_dir = os.path.join(build_dir, "pip-venv")
shutil.rmtree(env_dir, ignore_errors=True)
venv.create(env_dir, with_pip=True)
python = os.path.join(env_dir, "bin", "python")


def run(*args, **kwargs):
    print("+", " ".join(args), flush=True)
    done = subprocess.run(args, **kwargs)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}")


start = time.monotonic()
run(python, "-m", "pip", "install", source_dir)
print(f"pip install took {time.monotonic() - start:.0f} s", flush=True)

work = tempfile.mkdtemp(prefix="unetind-pip-")
weights = os.path.join(work, "w.safetensors")
run(cli, "init", "--out", weights, "--seed", "4")
run(cli, "synth", "--out", os.path.join(work, "data"), "--class", "1", "--size", "512", "--train-defective", "0",
    "--train-ok", "1", "--test-defective", "1", "--test-ok", "0", stdout=subprocess.DEVNULL)
image = os.path.join(work, "data", "Class1", "Test", "0001.PNG")
run(cli, "predict", "--model", weights, "--out", os.path.join(work, "predict"), image, stdout=subprocess.DEVNULL)
# From outside the source tree, so that only the installed module is found.
check = f"""
import numpy as np, unetind
print("unetind", unetind.__version__, "from", unetind.__file__, "with NumPy", np.__version__)
m = unetind.Model({weights!r})
pixels = unetind.read_image({image!r}).astype(np.uint8)
got = m.predict(pixels[None])["probabilities"][0]
want = np.load({os.path.join(work, "predict", "0001_prob.npy")!r})
diff = float(np.abs(got - want).max())
print("largest difference from predict's probabilities:", diff)
assert diff <= 1e-6
"""
run(python, "-c", check, cwd=work)
shutil.rmtree(work)
