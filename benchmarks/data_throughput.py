"""Data throughput: is training bound by input or by compute?

  python -m benchmarks.data_throughput     # writes benchmarks/results/data_throughput.txt

Measures, on the 11 bundled GRID clips (3 s each):
  * preparation speed (data/prepare.py's library call, worker start-up and TFDS writing
    included) in clips/s with 1 and 2 workers at 128 px;
  * examples/s out of the tf.data input pipeline (decoding, resizing, batching; after two
    warm-up batches) for the test config (32 px) and the 128 px default config;
  * training steps/s of the same configs: build_unet + training_losses + optax.adam in one
    jitted step (compilation and one warm-up step excluded), random parameters.
About 5 minutes on a 2-core CPU, most of it the 215 M-parameter 128 px step.
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import optax
from absl import flags

from benchmarks import common
from configs import default as default_config
from configs import test as test_config
from dheads_jax import diffusion, input_pipeline
from dheads_jax.data import audio, builder, process, sources
from dheads_jax.models.factory import build_unet

FLAGS = flags.FLAGS
flags.DEFINE_integer("pipeline_batches", 20, "Timed input-pipeline batches per config.")
flags.DEFINE_string("output", common.result_path("data_throughput"), "The result table.")
flags.DEFINE_string("videos_dir", common.GRID_DIR, "Clips to prepare.")
flags.DEFINE_integer("train_steps", 2, "Timed training steps per config.")
flags.DEFINE_integer("train_batch_128", 1, "Batch of the timed 128 px training step (CPU memory and time).")


def configs() -> dict:
    """The two configs, both reading mel datasets."""
    small = test_config.get_config()
    small.data.audio_encoder, small.data.mel_bins, small.data.mel_subframes = "mel", 8, 1
    big = default_config.get_config()
    big.data.audio_encoder = "mel"  # 64 bands x 4 sub-frames = 256 = audio_dim
    return {"test (32 px)": small, "default (128 px)": big}


def time_prepare(videos_dir: str, out: str, workers: int, data) -> tuple[float, int]:
    settings = process.PrepareSettings(
        image_size=data.image_size, mel=audio.MelParams(num_mels=data.mel_bins, subframes=data.mel_subframes)
    )
    start = time.perf_counter()
    result = builder.prepare_dataset(
        sources.ClipSpec(videos_dir), out, settings=settings, engine=builder.Engine(num_workers=workers)
    )
    return time.perf_counter() - start, sum(result.written.values())


def time_pipeline(config, batches: int) -> float:
    it = input_pipeline.make_train_iterator(config, process_index=0, process_count=1)
    for _ in range(2):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * it.batch_size / (time.perf_counter() - start)


def make_step(config):
    """A jitted Adam step on the diffusion loss; returns (step, state, batch maker)."""
    model = build_unet(config)
    sched = diffusion.schedule_from_config(config.diffusion)
    tx = optax.adam(config.optim.lr, config.optim.b1, config.optim.b2, config.optim.eps)

    def loss_fn(params, batch, key):
        k_t, k_n, k_d = jax.random.split(key, 3)
        x0 = batch["target"]
        t = jax.random.randint(k_t, (x0.shape[0],), 0, config.diffusion.num_timesteps)
        noise = jax.random.normal(k_n, x0.shape)
        x_t = diffusion.q_sample(sched, x0, t, noise)
        out = model.apply(
            {"params": params}, x_t, t, batch["identity"], batch["motion"], batch["audio"],
            train=True, rngs={"dropout": k_d},
        )  # fmt: skip
        losses = diffusion.training_losses(
            sched,
            out,
            x0,
            x_t,
            t,
            noise,
            batch["mouth_box"],
            config.diffusion.lambda_vlb,
            config.diffusion.lambda_ls,
        )
        return losses["loss"].mean()

    @jax.jit
    def step(params, opt_state, batch, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return model, tx, step


def time_train(config, batch_size: int, steps: int) -> float:
    model, tx, step = make_step(config)
    d, s = config.data, config.data.image_size
    mc = 1 if d.grayscale_motion else 3
    batch = dict(
        target=jnp.zeros((batch_size, s, s, 3)),
        identity=jnp.zeros((batch_size, s, s, 3)),
        motion=jnp.zeros((batch_size, d.motion_frames, s, s, mc)),
        audio=jnp.zeros((batch_size, 2 * d.audio_context + 1, d.audio_dim)),
        mouth_box=jnp.tile(jnp.array([[s // 2, s - 4, s // 4, 3 * s // 4]], jnp.int32), (batch_size, 1)),
    )
    params = model.init(
        jax.random.key(0), batch["target"], jnp.zeros((batch_size,), jnp.int32),
        batch["identity"], batch["motion"], batch["audio"],
    )["params"]  # fmt: skip
    opt_state = tx.init(params)
    key = jax.random.key(1)
    params, opt_state, loss = step(params, opt_state, batch, key)  # compile and warm up
    loss.block_until_ready()
    start = time.perf_counter()
    for i in range(steps):
        params, opt_state, loss = step(params, opt_state, batch, jax.random.fold_in(key, i))
    loss.block_until_ready()
    return steps / (time.perf_counter() - start)


def main() -> common.Lines:
    emit = common.start_table("", versions=("tensorflow", "tensorflow_datasets", "av", "dlib"))
    cfgs = configs()
    work = tempfile.mkdtemp(prefix="dheads_bench_")
    emit("## Preparation (GRID samples, 11 clips of 3 s, 360x288 MPEG-1)")
    emit(f"{'config':<18} {'workers':>7} {'seconds':>8} {'clips/s':>8}")
    dirs = {}
    for name, workers in (("default (128 px)", 1), ("default (128 px)", 2), ("test (32 px)", 2)):
        out = os.path.join(work, f"{name.split()[0]}_{workers}")
        seconds, n = time_prepare(FLAGS.videos_dir, out, workers, cfgs[name].data)
        dirs[name] = out
        emit(f"{name:<18} {workers:>7} {seconds:>8.1f} {n / seconds:>8.2f}")
    emit()
    emit("## Input pipeline vs training step (1 process)")
    emit(
        f"{'config':<18} {'batch':>5} {'pipeline ex/s':>13} {'train batch':>11} {'steps/s':>8} {'train ex/s':>10}"
    )
    for name, config in cfgs.items():
        config.data.dataset_dir = dirs[name]
        ex_s = time_pipeline(config, FLAGS.pipeline_batches)
        tb = config.train.batch_size if name.startswith("test") else FLAGS.train_batch_128
        steps_s = time_train(config, tb, FLAGS.train_steps)
        emit(
            f"{name:<18} {config.train.batch_size:>5} {ex_s:>13.1f} {tb:>11} {steps_s:>8.3f} {steps_s * tb:>10.2f}"
        )
    emit()
    emit("Input bound when pipeline ex/s < train ex/s. On this CPU the 128 px step is timed at batch")
    emit(
        f"{FLAGS.train_batch_128}; on accelerators compare pipeline ex/s per host with the host's share of the"
    )
    emit("global step rate (e.g. 80 examples x steps/s).")
    return emit


common.run(main)
