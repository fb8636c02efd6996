"""generate.py: loading inputs with named errors, streaming frames, planning sets."""

import json
import os

import numpy as np
import pytest

from dheads_jax import export, generate, media
from tests import helpers


def test_every_bad_input_raises_a_named_error(tiny_export, inputs, tmp_path):
    meta = export.read_meta(tiny_export)
    encoder = export.encoder_spec(meta)
    cases = [
        (lambda: generate.load_identity(str(inputs / "blank.jpg"), 32), "no face found"),
        (lambda: generate.load_identity(str(inputs / "corrupt.png"), 32), "unreadable image or video"),
        (lambda: generate.load_identity(str(inputs / "missing.png"), 32), "no such file"),
        (lambda: generate.load_audio(str(inputs / "corrupt.wav"), encoder), "unreadable audio"),
        (lambda: generate.load_audio(str(inputs / "short.wav"), encoder), "shorter than one video frame"),
    ]
    for fn, message in cases:
        with pytest.raises(generate.InputError, match=message):
            fn()
    waveform, emb = generate.load_audio(str(inputs / "silence.flac"), encoder)
    assert emb.shape == (12, 8) and np.all(np.isfinite(emb)) and len(waveform) == 12 * 640

    with pytest.raises(media.MediaError, match="does not exist"):
        media.check_writable(str(tmp_path / "no" / "such" / "dir" / "out.mp4"))
    with pytest.raises(export.ExportError, match="not an export"):
        export.read_meta(str(tmp_path))
    broken = tmp_path / "broken"
    os.makedirs(broken)
    with open(os.path.join(tiny_export, export.META_NAME)) as f:
        stale = json.load(f)
    stale["format_version"] = 99
    (broken / export.META_NAME).write_text(json.dumps(stale))
    with pytest.raises(export.ExportError, match="format 99"):
        export.read_meta(str(broken))
    stale["format_version"] = export.FORMAT_VERSION
    (broken / export.META_NAME).write_text(json.dumps(stale))
    with pytest.raises(export.ExportError, match="params/ folder is missing"):
        export.read_meta(str(broken))


def test_the_sampler_streams_frames_with_their_active_flags():
    s = generate.Sampler.from_export(helpers.OLD_EXPORT, dict(steps=2, audio_guidance=1.0))
    rng = np.random.default_rng(0)
    jobs = [
        generate.Job(rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32), rng.normal(size=(n, 8)), None, "", v)
        for v, n in enumerate([3, 1])
    ]
    seen = [(k, frames.dtype, frames.shape, active.tolist()) for k, frames, active in s.frames(jobs)]
    assert seen == [
        (0, np.uint8, (2, 32, 32, 3), [True, True]),
        (1, np.uint8, (2, 32, 32, 3), [True, False]),
        (2, np.uint8, (2, 32, 32, 3), [True, False]),
    ]


def test_entries_are_balanced_by_frames_and_split_deterministically():
    entries = [generate.Entry(i, f"{i}.mp4", n) for i, n in enumerate([10, 75, 30, 30, 40, 5, 60])]
    shares = generate.assign(entries, 3)
    assert sorted(e.video_id for s in shares for e in s) == list(range(7))
    loads = [sum(e.length for e in s) for s in shares]
    assert max(loads) - min(loads) <= 10 and sum(loads) == 250
    assert shares == generate.assign(list(reversed(entries)), 3)
    assert generate.assign(entries, 1) == [sorted(entries, key=lambda e: (-e.length, e.video_id))]
