"""Takes docs/app.png: the web app in headless Chromium after a real job has finished.

  python scripts/app_screenshot.py [--export=EXPORT_DIR] [--output=docs/app.png]

Starts run_app.py on a free port, opens it in headless Chromium (Debian's chromium and
chromium-driver) through Selenium (the test extra), uploads the first frame of a bundled
GRID clip and 2 s of another clip's speech, clicks Generate, waits for the video, shows a
frame from its middle and saves a 1280x900 screenshot. Without --export it uses the
bundled model; where that is missing it says so and makes an untrained 32 px export
(configs/test.py with random weights), whose video is noise: rerun it once the bundled
model is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
GRID = os.path.join(ROOT, "data", "samples", "grid")

flags.DEFINE_string("export", None, "An export folder (default: the bundled model).")
flags.DEFINE_string("output", os.path.join(ROOT, "docs", "app.png"), "The screenshot to write (PNG).")
flags.DEFINE_integer("upscale", None, "run_app.py --upscale.")
flags.DEFINE_integer("width", 1280, "Browser window width in pixels.")
flags.DEFINE_integer("height", 900, "Browser window height in pixels.")
FLAGS = flags.FLAGS


def untrained_export(folder: str) -> str:
    """A 32 px export of configs/test.py with random weights (2 steps per frame)."""
    from configs import test as test_config
    from dheads_jax import export
    from tests import helpers

    config = test_config.get_config()
    config.sampling.steps = 2
    return export.write_export(
        os.path.join(folder, "untrained"), helpers.random_params(config), config, weights="raw"
    )


def make_inputs(folder: str) -> tuple[str, str]:
    """A face photo (first frame of bbaf2n) and 2 s of speech (swwp2s) in ``folder``."""
    import soundfile
    from PIL import Image

    from dheads_jax import media

    face = os.path.join(folder, "face.png")
    Image.fromarray(media.read_identity_image(os.path.join(GRID, "bbaf2n.mpg"))).save(face)
    speech = os.path.join(folder, "speech.wav")
    waveform, _ = media.read_audio(os.path.join(GRID, "swwp2s.mpg"))
    soundfile.write(speech, waveform[: 2 * media.SAMPLE_RATE], media.SAMPLE_RATE)
    return face, speech


def start_app(export_dir: str, port: int, upscale: int | None, log_path: str) -> subprocess.Popen:
    """run_app.py in the background; returns once it serves."""
    command = [sys.executable, "run_app.py", f"--export={export_dir}", f"--port={port}"]
    if upscale:
        command.append(f"--upscale={upscale}")
    log = open(log_path, "w")  # noqa: SIM115 - the child writes it until it stops
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while "serving on" not in open(log_path).read():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            sys.exit(f"app_screenshot.py: run_app.py did not start:\n{open(log_path).read()[-2000:]}")
        time.sleep(0.5)
    return proc


def screenshot(url: str, face: str, speech: str, output: str, width: int, height: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        wait = WebDriverWait(driver, 1800, poll_frequency=0.2)
        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#speech input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#face input[type=file]").send_keys(face)
        driver.find_element(By.CSS_SELECTOR, "#speech input[type=file]").send_keys(speech)
        time.sleep(1)
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result video"))
        # Show a frame from the middle of the video, not the first (the identity's copy).
        driver.execute_async_script(
            "const v = document.querySelector('#result video'), done = arguments[0];"
            "const seek = () => { v.addEventListener('seeked', () => done(), {once: true});"
            " v.currentTime = v.duration / 2; };"
            "if (v.readyState >= 2) seek(); else v.addEventListener('loadeddata', seek, {once: true});"
        )
        time.sleep(0.5)
        driver.save_screenshot(output)
    finally:
        driver.quit()


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    upscale = FLAGS.upscale
    for name in ("chromium", "chromedriver"):
        if not shutil.which(name):
            sys.exit(f"app_screenshot.py: {name} not found (apt-get install chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="app_screenshot_") as folder:
        export_dir = FLAGS.export
        if not export_dir:
            from dheads_jax import bundled

            try:
                export_dir = bundled.default_export()
            except bundled.NoBundledModel:
                print(
                    "app_screenshot.py: no bundled model; using an untrained test export (its video is noise)"
                )
                export_dir = untrained_export(folder)
                upscale = upscale or 256
        face, speech = make_inputs(folder)
        from dheads_jax.distributed import free_port

        port = free_port()
        server = start_app(export_dir, port, upscale, os.path.join(folder, "app.log"))
        try:
            screenshot(f"http://127.0.0.1:{port}", face, speech, FLAGS.output, FLAGS.width, FLAGS.height)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    app.run(main)
