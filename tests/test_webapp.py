"""The web app: the job function's videos and messages, and run_app.py driven in headless Chromium."""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from dheads_jax import generate, media, webapp
from tests import helpers

BROWSER = ("chromium", "chromedriver")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [name for name in BROWSER if not shutil.which(name)]
    if missing:
        return (
            f"headless browser tests need chromium/chromedriver: {' and '.join(missing)} not found on PATH "
            "(apt-get install chromium chromium-driver)"
        )
    return None


@pytest.fixture(scope="module")
def app_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("app_inputs")
    with av.open(os.path.join(helpers.GRID_DIR, "bbaf2n.mpg")) as c:
        Image.fromarray(next(c.decode(video=0)).to_ndarray(format="rgb24")).save(d / "face.png")
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(d / "blank.jpg")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (d / "corrupt.wav").write_bytes(b"RIFF" + bytes(300))
    speech, _ = media.read_audio(os.path.join(helpers.GRID_DIR, "swwp2s.mpg"))
    soundfile.write(d / "speech.wav", speech[:16000], 16000)  # 1.0 s: 25 frames
    soundfile.write(d / "short.flac", speech[16000:25900], 16000)  # 0.62 s: 15 frames, 0.6 s
    soundfile.write(d / "long.wav", speech[:48000], 16000)  # 3 s
    soundfile.write(d / "silence.wav", np.zeros(16000, np.float32), 16000)
    return d


def read_mp4(path):
    """(video frames, audio codec, audio seconds) of an mp4 as PyAV decodes it."""
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        audio = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(audio=0))
        return frames, audio.codec_context.name, samples / audio.rate


def test_every_bad_upload_gives_the_command_line_message(tiny_export, app_inputs, tmp_path):
    maker = webapp.VideoMaker(tiny_export, str(tmp_path / "out"), max_seconds=2)
    defaults = maker.defaults
    assert (defaults.sampler, defaults.steps, defaults.audio_guidance, defaults.seed) == ("ddpm", 2, 1.0, 0)
    face, speech = str(app_inputs / "face.png"), str(app_inputs / "speech.wav")
    cases = [
        (None, speech, "no face: upload a photo or a video of a face"),
        (face, None, "no speech: upload an audio file or record one"),
        (
            str(app_inputs / "blank.jpg"),
            speech,
            f"{app_inputs / 'blank.jpg'}: no face found in the identity image",
        ),
        (str(app_inputs / "corrupt.png"), speech, f"{app_inputs / 'corrupt.png'}: unreadable image or video"),
        (face, str(app_inputs / "corrupt.wav"), f"{app_inputs / 'corrupt.wav'}: unreadable audio"),
        (
            face,
            str(app_inputs / "silence.wav"),
            f"{app_inputs / 'silence.wav'}: the audio is silent (no speech to follow)",
        ),
        (
            face,
            str(app_inputs / "long.wav"),
            f"{app_inputs / 'long.wav'}: the audio is 3.0 s long; this app makes videos of at most 2 s "
            "(--max_seconds)",
        ),
    ]
    for id_image, audio, message in cases:
        with pytest.raises(generate.EXPECTED_ERRORS) as info:
            maker.make_video(id_image, audio, defaults)
        assert str(info.value).startswith(message) and "\n" not in str(info.value)
    # The same text as the command line's loaders give.
    with pytest.raises(generate.InputError) as cli:
        generate.load_identity(str(app_inputs / "blank.jpg"), maker.sampler.image_size)
    with pytest.raises(generate.InputError) as app:
        maker.make_video(str(app_inputs / "blank.jpg"), speech, defaults)
    assert str(app.value) == str(cli.value)
    assert webapp.user_message(app.value, [str(app_inputs / "blank.jpg")]) == (
        "blank.jpg: no face found in the identity image"
    )
    with pytest.raises(generate.InputError, match="steps must be at least 1"):
        maker.make_video(face, speech, webapp.Settings("ddpm", 0, 1.0, 0))
    with pytest.raises(generate.InputError, match="sampler"):
        maker.make_video(face, speech, webapp.Settings("euler", 2, 1.0, 0))
    assert os.listdir(tmp_path / "out") == []


def test_a_job_writes_an_mp4_with_audio_and_reports_each_frame(tiny_export, app_inputs, tmp_path):
    maker = webapp.VideoMaker(tiny_export, str(tmp_path), max_seconds=2)
    calls = []
    path = maker.make_video(
        str(app_inputs / "face.png"),
        str(app_inputs / "short.flac"),
        maker.defaults,
        lambda *a: calls.append(a),
    )
    assert [c[:2] for c in calls] == [(k, 15) for k in range(16)]
    assert "ETA" in calls[-1][2] and "frames/s" in calls[-1][2]
    frames, codec, seconds = read_mp4(path)
    assert frames == 15 and codec == "aac" and seconds == pytest.approx(0.6, abs=0.07)
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary left


@pytest.mark.slow
def test_run_app_rejects_a_bad_export_in_one_line(tmp_path):
    proc = helpers.run_command("run_app.py", f"--checkpoint={tmp_path}", "--port=1", timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"run_app.py: {tmp_path}: not an export (no export.json); make one with run_export.py"
    )


# ----------------------------------------------------------------------------- in a browser


@pytest.fixture
def app_url(tiny_export, tmp_path):
    """run_app.py serving the tiny export on a free port; yields its URL, stops it after."""
    port = helpers.free_port()
    log = open(tmp_path / "app.log", "w+")  # noqa: SIM115 - closed below
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "run_app.py",
            f"--export={tiny_export}",
            f"--port={port}",
            "--max_seconds=5",
            f"--output_dir={tmp_path / 'videos'}",
        ],
        cwd=helpers.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.time() + 240
        while "serving on" not in open(tmp_path / "app.log").read():
            assert proc.poll() is None, open(tmp_path / "app.log").read()[-3000:]
            assert time.time() < deadline, "run_app.py did not start"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def chrome(width=1280, height=900):
    """Headless Chromium with a fake microphone (a beep) that needs no permission prompt."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.fixture
def browser():
    """Headless Chromium driven by Selenium; skips the test when either is missing."""
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    pytest.importorskip("selenium", reason="browser tests need selenium (the test extra)")
    driver = chrome()
    yield driver
    driver.quit()


class Page:
    """The app's page in a browser: uploads, the button, the video and the error toasts."""

    def __init__(self, driver, url):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        self.wait = lambda timeout=120: WebDriverWait(driver, timeout, poll_frequency=0.1)
        driver.get(url)
        self.wait(60).until(lambda d: self.file_input("face") and self.file_input("speech"))

    def file_input(self, elem_id):
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} input[type=file]")
        return found[0] if found else None

    def upload(self, elem_id, path):
        """Puts ``path`` into a file or audio component, replacing what it holds."""
        from selenium.webdriver.common.by import By

        if self.file_input(elem_id) is None:
            self.driver.find_element(By.CSS_SELECTOR, f"#{elem_id} button[aria-label='Clear']").click()
            self.wait(20).until(lambda d: self.file_input(elem_id))
        self.file_input(elem_id).send_keys(str(path))
        self.wait(30).until(lambda d: self.holds(elem_id, os.path.basename(path)))

    def holds(self, elem_id, name=""):
        """Whether the component links to an upload on the server (whose name ends with ``name``)."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' a')].some(a =>"
            " a.href.includes('/gradio_api/file=') && decodeURIComponent(a.href).endsWith(arguments[1]));",
            f"#{elem_id}",
            name,
        )

    def generate(self):
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, "#generate").click()

    def video_src(self):
        return self.driver.execute_script(
            "const v = document.querySelector('#result video'); return v && v.src;"
        )

    def wait_for_video(self, previous=None):
        """The new video's (src, duration in seconds) once its metadata has loaded."""
        src = self.wait().until(lambda d: (s := self.video_src()) and s != previous and s)
        duration = self.driver.execute_async_script(
            "const v = document.querySelector('#result video'), done = arguments[0];"
            "if (v.readyState >= 1) done(v.duration);"
            "else v.addEventListener('loadedmetadata', () => done(v.duration));"
        )
        return src, duration

    def errors(self):
        return self.driver.execute_script(
            "return [...document.querySelectorAll('[data-testid=toast-text]')].map(e => e.innerText.trim());"
        )

    def close_errors(self):
        from selenium.webdriver.common.by import By

        for button in self.driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-close]"):
            button.click()
        self.wait(20).until(lambda d: not self.errors())

    def watch_progress(self):
        """Records every text of the video's progress bar from now on (``progress``)."""
        self.driver.execute_script(
            "window.seenProgress = []; const r = document.querySelector('#result');"
            "new MutationObserver(() => window.seenProgress.push(r.innerText.replace(/\\s+/g, ' ')))"
            ".observe(r, {subtree: true, childList: true, characterData: true});"
        )

    def progress(self):
        return self.driver.execute_script("return window.seenProgress;")

    def text(self, elem_id):
        return self.driver.execute_script(
            "return document.querySelector(arguments[0]).innerText;", f"#{elem_id}"
        )

    def record(self, seconds):
        """Records from the (fake) microphone into the speech component."""
        from selenium.webdriver.common.by import By

        speech = self.driver.find_element(By.ID, "speech")
        speech.find_element(By.CSS_SELECTOR, "button[aria-label='Clear']").click()
        speech.find_element(By.CSS_SELECTOR, "button[aria-label='Record audio']").click()
        self.wait(20).until(lambda d: speech.find_elements(By.CSS_SELECTOR, "button.record-button"))
        speech.find_element(By.CSS_SELECTOR, "button.record-button").click()
        time.sleep(seconds)
        self.wait(20).until(
            lambda d: speech.find_element(By.CSS_SELECTOR, "button.stop-button").is_displayed()
        )
        speech.find_element(By.CSS_SELECTOR, "button.stop-button").click()
        self.wait(30).until(lambda d: self.holds("speech"))


@pytest.mark.slow
def test_the_page_makes_videos_shows_bad_inputs_and_goes_on(browser, app_url, app_inputs, tmp_path):
    driver = browser
    page = Page(driver, app_url)
    # A good job: a playable video of floor(1.0 s * 25) / 25 = 1.0 s, with its sound.
    page.upload("face", app_inputs / "face.png")
    page.upload("speech", app_inputs / "speech.wav")
    page.watch_progress()
    page.generate()
    first, duration = page.wait_for_video()
    assert any(re.search(r"\d+/25 frames.*frames/s, ETA \d+m\d\ds", t) for t in page.progress()), (
        page.progress()
    )
    assert duration == pytest.approx(25 / 25, abs=1e-3)
    assert page.text("info").startswith("25 frames (1.00 s) made in")
    with urllib.request.urlopen(first) as response:
        served = response.read()
    mp4 = tmp_path / "served.mp4"
    mp4.write_bytes(served)
    frames, codec, seconds = read_mp4(mp4)
    assert frames == 25 and codec == "aac" and seconds == pytest.approx(1.0, abs=0.07)
    assert driver.execute_script(
        "return document.querySelector('#result video').canPlayType('video/mp4; codecs=\"avc1.64001e\"');"
    )
    # Everything the page loaded came from the app itself: no fonts, scripts or analytics from outside.
    outside = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith(location.origin) && !n.startsWith('data:') && !n.startsWith('blob:'));"
    )
    assert outside == []

    # A photo without a face: the command line's one-line message, with the upload's name.
    page.upload("face", app_inputs / "blank.jpg")
    page.generate()
    page.wait(60).until(lambda d: page.errors())
    assert page.errors() == ["blank.jpg: no face found in the identity image"]
    assert page.video_src() == first
    page.close_errors()

    # The app still answers: a second good job, 0.62 s of audio -> 15 frames, 0.6 s.
    page.upload("face", app_inputs / "face.png")
    page.upload("speech", app_inputs / "short.flac")
    page.generate()
    second, duration = page.wait_for_video(previous=first)
    assert duration == pytest.approx(15 / 25, abs=1e-3)
    assert page.errors() == []

    # And a recording from the microphone (Chromium's fake one beeps).
    page.record(1.5)
    page.generate()
    _, duration = page.wait_for_video(previous=second)
    made = int(page.text("info").split()[0])
    assert 25 <= made <= 75 and duration == pytest.approx(made / 25, abs=1e-3)
