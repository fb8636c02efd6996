"""The PyTorch converter: parity with the reference model and its sampler, one-line errors."""

import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the optional extra: pip install -e .[torch]")

from configs import crema  # noqa: E402
from dheads_jax import export  # noqa: E402
from dheads_jax.convert import converter, mapping, sda  # noqa: E402
from dheads_jax.convert import torch_reference as ref  # noqa: E402
from dheads_jax.diffusion import build_schedule  # noqa: E402
from dheads_jax.models import factory  # noqa: E402
from dheads_jax.sampling import SamplingOptions, UNetApply, sample_frame, step_noise  # noqa: E402

TOL = 1e-4
# A chain step amplifies network differences by coef1_q * sqrt(1 / abar - 1) where x0_hat is not
# clamped: about 1e4 at t = 999 of a 4-step chain. Measured: 5e-5 over 4 steps (forward: 1e-5).
CHAIN_TOL = 5e-4

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch", "ignore::torch.jit.TracerWarning")


def small_config(grayscale: bool = False):
    """configs/crema.py at 32 px with 32 channels and levels (1, 2); attention at 16 px."""
    config = crema.get_config()
    config.name = "convert-test"
    config.data.image_size = 32
    config.data.audio_dim = 24
    config.data.grayscale_motion = grayscale
    config.model.model_channels = 32
    config.model.channel_mult = (1, 2)
    config.model.attention_resolutions = (16,)
    config.model.head_channels = 16
    return config


def traced_model(config, seed: int = 0):
    """The reference U-Net of ``config`` with random weights, traced to TorchScript (eval mode)."""
    model = ref.randomize_(ref.from_config(config), seed=seed).eval()
    s, d = config.data.image_size, config.data
    mc = factory.motion_channels(config)
    example = (
        torch.zeros(1, 3, s, s),
        torch.zeros(1, dtype=torch.long),
        torch.zeros(1, 3, s, s),
        torch.zeros(1, d.motion_frames * mc, s, s),
        torch.zeros(1, 2 * d.audio_context + 1, d.audio_dim),
    )
    with torch.no_grad():
        return torch.jit.trace(model, example, check_trace=False)


def random_inputs(config, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        k: rng.uniform(-1, 1, v.shape).astype(np.float32)
        for k, v in factory.input_specs(config, batch).items()
        if k != "timesteps"
    }


def to_torch(inputs: dict[str, np.ndarray]) -> tuple:
    """NHWC model inputs -> the authors' NCHW call (x, x_cond, motion_frames, audio_emb)."""
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    m = inputs["motion"]  # [B, M, H, W, mc] oldest first -> [B, M * mc, H, W]
    motion = torch.from_numpy(
        np.ascontiguousarray(m.transpose(0, 1, 4, 2, 3).reshape(m.shape[0], -1, *m.shape[2:4]))
    )
    return nchw(inputs["x_t"]), nchw(inputs["identity"]), motion, torch.from_numpy(inputs["audio"])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(TorchScript path, export folder, config) of the small colour model."""
    root = tmp_path_factory.mktemp("convert")
    config = small_config()
    script = str(root / "small_script.pt")
    traced_model(config).save(script)
    out = str(root / "export")
    converter.convert_checkpoint(script, out, config)
    return script, out, config


def run_cli(args, capsys) -> tuple[int, list[str]]:
    code = converter.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_forward_matches_pytorch(converted):
    script, out, _ = converted
    config, params, meta = export.load_export(out)
    assert meta["weights"] == "raw" and meta["provenance"]["source_format"] == "torchscript"
    assert meta["audio_encoder"] == {"name": "sda", "dim": 24, "params": {"source": "external"}}
    inputs = random_inputs(config, 4)
    timesteps = np.array([0, 37, 500, 999], np.int32)
    model = factory.build_unet(config)
    jax_out = np.asarray(jax.jit(UNetApply(model))(params, timesteps=timesteps, **inputs))

    x, x_cond, motion, audio = to_torch(inputs)
    with torch.no_grad():
        torch_out = torch.jit.load(script)(x, torch.from_numpy(timesteps).long(), x_cond, motion, audio)
    torch_out = torch_out.numpy().transpose(0, 2, 3, 1)
    assert jax_out.shape == torch_out.shape == (4, 32, 32, 6)
    assert torch_out.std() > 0.3  # a real signal, not zeros
    err = np.abs(jax_out - torch_out).max()
    assert err < TOL, f"max |JAX - PyTorch| = {err:.2e}"
    # Different timesteps give different outputs (the embedding is used).
    assert np.abs(torch_out[1] - torch_out[2]).max() > 0.01


def test_respaced_sampling_chain_matches_pytorch(converted):
    script, out, _ = converted
    config, params, _ = export.load_export(out)
    steps, batch = 4, 2
    schedule = build_schedule("cosine", 1000, steps)
    coefficients = ref.respaced_coefficients(steps)
    np.testing.assert_array_equal(np.asarray(schedule.timesteps), coefficients["timesteps"])
    inputs = random_inputs(config, batch, seed=1)
    keys = jax.random.split(jax.random.key(7), batch)
    model = factory.build_unet(config)
    options = SamplingOptions.from_config(config, steps=steps)
    assert (options.sampler, options.audio_guidance) == ("ddpm", 1.0)  # the official sampler
    condition = (inputs["identity"], inputs["motion"], inputs["audio"])
    run = jax.jit(lambda p: sample_frame(UNetApply(model), p, schedule, keys, condition, options, True))
    x0_jax, traj_jax = run(params)

    shape = (32, 32, 3)
    nchw = lambda a: torch.from_numpy(np.asarray(a).transpose(0, 3, 1, 2).copy())  # noqa: E731
    x_T = nchw(step_noise(keys, steps, shape))
    noises = [nchw(step_noise(keys, j, shape)) for j in range(steps)]
    _, x_cond, motion, audio = to_torch(inputs)
    x0_torch, traj_torch = ref.sample_frame(
        torch.jit.load(script), coefficients, x_T, noises, x_cond, motion, audio
    )
    for i, (a, b) in enumerate(zip(np.asarray(traj_jax), traj_torch, strict=True)):
        err = np.abs(a - b.numpy().transpose(0, 2, 3, 1)).max()
        assert err < CHAIN_TOL, f"step {i}: max |JAX - PyTorch| = {err:.2e}"
    assert np.abs(np.asarray(x0_jax) - x0_torch.numpy().transpose(0, 2, 3, 1)).max() < CHAIN_TOL
    assert np.abs(np.asarray(x0_jax)).max() <= 1.0 + 1e-6  # the last step returns the clamped x0_hat


def test_lightning_checkpoint_converts_to_the_same_parameters(converted, tmp_path, capsys):
    script, out, config = converted
    state = torch.jit.load(script).state_dict()
    ckpt = {
        "epoch": 3,
        "global_step": 1234,
        "pytorch-lightning_version": "1.9.0",
        "hyper_parameters": {"lr": 5e-5, "model_channels": 32},
        "state_dict": {
            **{f"unet.{k}": v.clone() for k, v in state.items()},
            **{f"diffusion.nn_backbone.{k}": v.clone() for k, v in state.items()},
            "diffusion.betas": torch.linspace(1e-4, 0.02, 10),
        },
    }
    path = str(tmp_path / "last.ckpt")
    torch.save(ckpt, path)
    facts = converter.convert_checkpoint(path, str(tmp_path / "from_ckpt"), config)
    assert facts["source_format"] == "lightning" and facts["source_prefix"] == "unet."
    _, a, _ = export.load_export(out)
    _, b, _ = export.load_export(str(tmp_path / "from_ckpt"))
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))

    # Hyper-parameters that are Python objects (a namespace, as Lightning's) need the explicit opt-in.
    ckpt["hyper_parameters"] = types.SimpleNamespace(lr=5e-5)
    torch.save(ckpt, path)
    with pytest.raises(converter.ConvertError, match="rerun with --allow_pickle"):
        converter.convert_checkpoint(path, str(tmp_path / "pickled"), config)
    assert not os.path.exists(tmp_path / "pickled")
    converter.convert_checkpoint(path, str(tmp_path / "pickled"), config, allow_pickle=True)
    _, c, _ = export.load_export(str(tmp_path / "pickled"))
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, c))


def _assert_failed_cleanly(code, err, folder, keep, *needles):
    assert code == 1
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    assert sorted(os.listdir(folder)) == sorted(keep)  # no export, no partial or temp folder


def test_not_a_checkpoint_fails_with_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.pt"
    bad.write_text("these are not weights\n")
    code, err = run_cli([f"--torch_checkpoint={bad}", f"--output={tmp_path / 'out'}"], capsys)
    _assert_failed_cleanly(
        code, err, tmp_path, ["notes.pt"], "notes.pt", "not a TorchScript file or PyTorch checkpoint"
    )
    code, err = run_cli(
        [f"--torch_checkpoint={tmp_path / 'missing.pt'}", f"--output={tmp_path / 'out'}"], capsys
    )
    _assert_failed_cleanly(code, err, tmp_path, ["notes.pt"], "no such file")


def test_a_bad_command_line_is_one_line_and_status_2(tmp_path, capsys):
    for args, needle in (
        ([f"--output={tmp_path / 'out'}"], "flag --torch_checkpoint=None"),
        (["--torch_checkpoint=a.pt", "--output=b", "--allow_pickle=maybe"], "flag --allow_pickle=maybe"),
        (["--torch_checkpoint=a.pt", "--output=b", "--nosuch=1"], "Unknown command line flag 'nosuch'"),
        (["--torch_checkpoint=a.pt", "--output=b", "extra"], "unexpected arguments: ['extra']"),
    ):
        with pytest.raises(SystemExit) as e:
            converter.main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1, err
        assert err[0].startswith("python -m dheads_jax.convert: error: ") and needle in err[0], err[0]
    with pytest.raises(SystemExit) as e:
        sda.main(["--audio=a.wav"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "--encoder" in err[0] and "--output" in err[0], err
    with pytest.raises(SystemExit) as e:
        converter.main(["--help"])
    assert e.value.code == 0 and "  --[no]allow_pickle: " in capsys.readouterr().out
    assert os.listdir(tmp_path) == []


def test_wrong_shapes_fail_with_one_line_naming_the_tensors(tmp_path):
    gray = str(tmp_path / "gray.pt")
    traced_model(small_config(grayscale=True)).save(gray)
    with pytest.raises(converter.ConvertError) as e:
        converter.convert_checkpoint(gray, str(tmp_path / "out"), small_config())
    msg = str(e.value)
    assert "\n" not in msg and "input_blocks.0.0.weight [32, 8, 3, 3] (expected [32, 12, 3, 3])" in msg
    assert sorted(os.listdir(tmp_path)) == ["gray.pt"]


def test_grayscale_unet_into_colour_config_names_the_config_that_fits(tmp_path, capsys):
    # Full-size shapes at no cost: every tensor is a view of one zero (torch.save stores one storage).
    one = torch.zeros(1)
    state = {k: one.expand(v) for k, v in mapping.official_table(8).items()}
    path = tmp_path / "lrw.ckpt"
    torch.save({"state_dict": {f"unet.{k}": v for k, v in state.items()}}, str(path))
    assert path.stat().st_size < 200_000
    code, err = run_cli(
        [f"--torch_checkpoint={path}", f"--output={tmp_path / 'out'}", "--config=crema"], capsys
    )
    _assert_failed_cleanly(
        code,
        err,
        tmp_path,
        ["lrw.ckpt"],
        "1 with another shape: input_blocks.0.0.weight [256, 8, 3, 3] (expected [256, 12, 3, 3])",
        "use --config=lrw",
    )


def test_config_names_resolve_from_any_working_directory(tmp_path):
    # configs is an installed package: a named config needs no repository checkout as cwd.
    code = "from dheads_jax.convert import converter; print(converter.resolve_config('lrw').name)"
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "lrw"
    with pytest.raises(converter.ConvertError, match="unknown config 'nosuch'; use one of crema, lrw"):
        converter.resolve_config("nosuch")


def test_missing_torch_says_how_to_install(tmp_path, capsys, monkeypatch, converted):
    script = converted[0]
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now raises ImportError
    code, err = run_cli([f"--torch_checkpoint={script}", f"--output={tmp_path / 'out'}"], capsys)
    _assert_failed_cleanly(code, err, tmp_path, [], "PyTorch is not installed", "pip install -e .[torch]")
    with pytest.raises(sda.SDAError, match=r"pip install -e \.\[torch\]"):
        sda.sda_embeddings(np.zeros(6400, np.float32), script)
