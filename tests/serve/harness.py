"""What the server's Python tests share: a `unet-industrial serve` child
process, a virtual environment under the build directory for packages from
PyPI, and ctest's skip convention (exit code 77 with the reason printed)."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

SKIP = 77  # ctest's SKIP_RETURN_CODE for these tests


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def paths():
    """The CLI, the build directory and ../shared, from the command line."""
    if len(sys.argv) < 3:
        sys.exit(f"usage: {sys.argv[0]} UNET_INDUSTRIAL_CLI BUILD_DIR [SHARED_DIR]")
    shared = sys.argv[3] if len(sys.argv) > 3 else ""
    return sys.argv[1], sys.argv[2], shared if shared and os.path.isdir(shared) else ""


def dagm_image(shared):
    """A real DAGM image with a defect, or a visible skip without ../shared."""
    if not shared:
        skip("../shared/fixtures is absent: no real DAGM image to send")
    return os.path.join(shared, "fixtures", "dagm2007", "Class1", "Test", "0002.PNG")


def venv_python(build_dir, name, packages):
    """python of build_dir/<name> with `packages` pip-installed, made once.
    Skips visibly where PyPI cannot be reached."""
    venv = os.path.join(build_dir, name)
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, "installed.txt")
    wanted = " ".join(packages)
    if os.path.exists(stamp) and open(stamp).read() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
                         capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        skip(f"pip could not install {wanted} (is PyPI reachable?): {pip.stderr.strip()[-400:]}")
    with open(stamp, "w") as f:
        f.write(wanted)
    return python


class Server:
    """`unet-industrial serve --port 0 ARGS`, stopped with SIGTERM at the end."""

    def __init__(self, cli, args, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([cli, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on http://([^:]+):(\d+)", line)
        if not match:
            self.proc.wait(timeout=30)
            sys.exit(f"serve did not start: {line}\n{open(log_path).read()}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.url = f"http://{self.host}:{self.port}"

    def get_json(self, path, data=None):
        request = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self.log.close()
        if code != 0 and exc[0] is None:
            sys.exit(f"serve exited {code} after SIGTERM:\n{open(self.log_path).read()}")


def run(cmd, **kw):
    """Runs a command; exits with its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"timed out after {seconds} s waiting for {what}")
