"""The web page at `/`, in headless Chromium (Debian's `chromium`), driven
over the DevTools protocol on a pipe (no extra packages): it loads, lists the
model, takes a real DAGM image through its file input, and shows the score
and decision that the server's /v1 endpoint gives for that image. It saves a
screenshot to BUILD_DIR/web_page.png. Skips visibly without chromium or
without ../shared.

    python3 tests/serve/test_web_page.py CLI BUILD_DIR [SHARED_DIR]
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class DevTools:
    """Chrome DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, chromium, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def wire_fds():
            # Copies first, so that a pipe end already at 3 or 4 is not lost.
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
             "--window-size=1280,900", "--remote-debugging-pipe", "about:blank"],
            close_fds=False, preexec_fn=wire_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.next_id = 0
        self.buffer = b""
        self.session = None

    def call(self, method, session=True, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    sys.exit(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                sys.exit("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except SystemExit:
            pass
        self.proc.wait(timeout=30)


cli, build_dir, shared = harness.paths()
image = harness.dagm_image(shared)
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    harness.skip("chromium is not installed (make test installs Debian's chromium)")

work = tempfile.mkdtemp(prefix="unetind-web-")
weights = os.path.join(work, "class1.safetensors")
harness.run([cli, "init", "--out", weights, "--seed", "4"])

with harness.Server(cli, ["--model", f"class1={weights}"], os.path.join(work, "serve.log")) as server:
    with open(image, "rb") as f:
        reply = urllib.request.urlopen(urllib.request.Request(
            server.url + "/v1/models/class1/inspect", data=f.read(), headers={"Content-Type": "image/png"}))
        expected = json.loads(reply.read())

    browser = DevTools(chromium, os.path.join(work, "profile"))
    try:
        target = browser.call("Target.createTarget", session=False, url="about:blank")["targetId"]
        browser.session = browser.call("Target.attachToTarget", session=False, targetId=target,
                                       flatten=True)["sessionId"]
        browser.call("Page.enable")
        browser.call("Page.navigate", url=server.url + "/")
        harness.wait_for(lambda: browser.evaluate("document.getElementById('model').options.length") == 1,
                         30, "the page to list the model")
        assert browser.evaluate("document.getElementById('model').value") == "class1"

        root = browser.call("DOM.getDocument")["root"]["nodeId"]
        file_input = browser.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
        browser.call("DOM.setFileInputFiles", nodeId=file_input, files=[os.path.abspath(image)])
        shown = harness.wait_for(
            lambda: browser.evaluate("document.getElementById('result').classList.contains('shown') || "
                                     "document.getElementById('error').textContent"),
            60, "the page to show the result")
        assert shown is True, f"the page shows an error: {shown}"
        score = browser.evaluate("document.getElementById('score').textContent")
        verdict = browser.evaluate("document.getElementById('verdict').textContent")
        overlay_loaded = harness.wait_for(
            lambda: browser.evaluate("document.getElementById('overlay').complete && "
                                     "document.getElementById('overlay').naturalWidth"), 30, "the overlay")
        print(f"page: score {score}, verdict {verdict}, overlay {overlay_loaded} px wide; "
              f"server: score {expected['defect_score']:.4f}, defective {expected['is_defective']}")
        assert score == f"{expected['defect_score']:.4f}", (score, expected)
        assert verdict == ("DEFECT" if expected["is_defective"] else "OK"), verdict
        assert overlay_loaded == 512, overlay_loaded

        shot = browser.call("Page.captureScreenshot", format="png")["data"]
        path = os.path.join(build_dir, "web_page.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot))
        print(f"screenshot: {path}")
    finally:
        browser.close()

print("OK: the web page shows the server's score and decision")
