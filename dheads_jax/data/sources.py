"""Which clips make a dataset (folder walks, official file lists, parallel audio, speaker ids), and why one is left out."""

from __future__ import annotations

import dataclasses
import os
import re

from dheads_jax.media import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, MediaError

# Files that may sit beside the clips and are not clips (documentation, lists, embeddings).
IGNORED_EXTENSIONS = (".md", ".txt", ".json", ".csv", ".npy", ".lst", ".yaml", ".yml", ".pth")
SPLIT_NAMES = ("train", "val", "validation", "test")


@dataclasses.dataclass(frozen=True)
class ClipSource:
    """One candidate clip.

    Attributes:
      split: dataset split it goes to.
      index: position in its split's candidate list; stored as ``clip_index``.
      relative_path: path under the videos folder, "/"-separated (the clip's identity).
      video_path: absolute path of the video file.
      audio_path: parallel audio file, or None to use the video's own audio track.
      speaker_id: from the pattern, else the first folder of the relative path, else "unknown".
    """

    split: str
    index: int
    relative_path: str
    video_path: str
    audio_path: str | None
    speaker_id: str

    @property
    def clip_id(self) -> str:
        return os.path.splitext(self.relative_path)[0]


class ClipError(MediaError):
    """A clip whose files decode but cannot go into the dataset.

    Reasons: "too_short", "length_mismatch", "no_face", "missing_embeddings",
    "bad_embeddings". A subclass of ``media.MediaError`` (which covers the files themselves:
    "corrupt", "not_video", "no_audio", ...), so preparation catches one type; either
    becomes a ``Skip`` with the error's ``reason`` and ``message``.
    """


@dataclasses.dataclass(frozen=True)
class Skip:
    """A clip left out of the dataset, as listed in the JSON report."""

    clip: str
    split: str
    reason: str
    message: str


def read_file_list(path: str) -> list[str]:
    """Relative paths of a file list, one per line (official ``file_list_*.txt`` format).

    Blank lines and lines starting with "#" are ignored, a leading "./" is dropped, and the
    last line may or may not end with a newline (the official loader cut 5 characters per
    line and so lost the extension of an unterminated last line).
    """
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    paths = [
        os.path.normpath(line).replace(os.sep, "/") for line in lines if line and not line.startswith("#")
    ]
    return [p[2:] if p.startswith("./") else p for p in paths]


def split_of_file_list(spec: str) -> tuple[str, str]:
    """(split, path) of a ``--file_list`` entry: "NAME=PATH", or a name read from the file name.

    ``file_list_train.txt`` -> train, ``file_list_crema_test.txt`` -> test, else the stem.
    """
    if "=" in spec:
        name, path = spec.split("=", 1)
        return name, path
    stem = os.path.splitext(os.path.basename(spec))[0]
    stem = stem.removeprefix("file_list_")
    last = stem.rsplit("_", 1)[-1]
    return (last if last in SPLIT_NAMES else stem), spec


def walk_videos(videos_dir: str, exclude: str | None = None) -> tuple[list[str], list[str]]:
    """Sorted relative paths under ``videos_dir``: (video files, files that are not videos).

    Hidden files, files under ``exclude`` (a parallel audio folder inside the videos folder)
    and documentation-like files (IGNORED_EXTENSIONS) are left out of both lists.
    """
    videos, others = [], []
    exclude = os.path.abspath(exclude) if exclude else None
    for root, dirs, files in os.walk(videos_dir):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and os.path.abspath(os.path.join(root, d)) != exclude
        )
        for name in sorted(files):
            ext = os.path.splitext(name)[1].lower()
            if name.startswith(".") or ext in IGNORED_EXTENSIONS:
                continue
            rel = os.path.relpath(os.path.join(root, name), videos_dir).replace(os.sep, "/")
            (videos if ext in VIDEO_EXTENSIONS else others).append(rel)
    return sorted(videos), sorted(others)


def find_audio(audio_dir: str | None, relative_path: str) -> str | None:
    """The parallel audio file of a clip: same relative path, any audio extension."""
    if not audio_dir:
        return None
    stem = os.path.join(audio_dir, os.path.splitext(relative_path)[0])
    for ext in AUDIO_EXTENSIONS + tuple(e.upper() for e in AUDIO_EXTENSIONS):
        if os.path.isfile(stem + ext):
            return stem + ext
    return None


def speaker_of(relative_path: str, pattern: str | None = None) -> str:
    """Speaker id: first group of ``pattern`` searched in the path, else the first folder."""
    if pattern:
        m = re.search(pattern, relative_path)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else "unknown"


def collect_clips(
    videos_dir: str,
    file_lists: list[str] | tuple[str, ...] = (),
    audio_dir: str | None = None,
    speaker_pattern: str | None = None,
) -> tuple[list[ClipSource], list[Skip]]:
    """Candidate clips per split, and the files rejected before decoding.

    Args:
      videos_dir: folder of clips.
      file_lists: ``--file_list`` entries; none means every video under ``videos_dir`` goes
        to the split "train".
      audio_dir: optional parallel folder of audio files.
      speaker_pattern: optional regex for the speaker id.

    Returns:
      (sources, skips): skips are missing listed files and non-video files in the folder.
    """
    sources, skips = [], []
    if file_lists:
        listed = []
        for spec in file_lists:
            split, path = split_of_file_list(spec)
            listed += [(split, rel) for rel in read_file_list(path)]
    else:
        videos, others = walk_videos(videos_dir, exclude=audio_dir)
        listed = [("train", rel) for rel in videos]
        skips += [
            Skip(
                rel, "train", "not_video", f"not a video file ({os.path.splitext(rel)[1] or 'no extension'})"
            )
            for rel in others
        ]
    counters: dict[str, int] = {}
    for split, rel in listed:
        path = os.path.join(videos_dir, rel)
        if not os.path.isfile(path):
            skips.append(Skip(rel, split, "missing", f"listed file not found: {path}"))
            continue
        index = counters.setdefault(split, 0)
        counters[split] += 1
        sources.append(
            ClipSource(
                split,
                index,
                rel,
                os.path.abspath(path),
                find_audio(audio_dir, rel),
                speaker_of(rel, speaker_pattern),
            )
        )
    return sources, skips
