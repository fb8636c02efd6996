"""Which clips make a dataset (folder walks, official file lists, parallel audio, speaker ids), and why one is left out."""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re

from dheads_jax import files
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
    lines = [line.strip() for line in files.read_text(path).splitlines()]
    paths = [posixpath.normpath(line) for line in lines if line and not line.startswith("#")]
    return [p[2:] if p.startswith("./") else p for p in paths]


def split_of_file_list(spec: str) -> tuple[str, str]:
    """(split, path) of a ``--file_list`` entry: "NAME=PATH", or a name read from the file name.

    ``file_list_train.txt`` -> train, ``file_list_crema_test.txt`` -> test, else the stem.
    """
    if "=" in spec and not spec.split("=", 1)[0].count("/"):
        name, path = spec.split("=", 1)
        return name, path
    stem = posixpath.splitext(posixpath.basename(spec))[0]
    stem = stem.removeprefix("file_list_")
    last = stem.rsplit("_", 1)[-1]
    return (last if last in SPLIT_NAMES else stem), spec


def walk_videos(videos_dir: str, exclude: str | None = None) -> tuple[list[str], list[str]]:
    """Sorted relative paths under ``videos_dir``: (video files, files that are not videos).

    Hidden files and folders, files under ``exclude`` (a parallel audio folder inside the
    videos folder) and documentation-like files (IGNORED_EXTENSIONS) are left out of both.
    Works on any path ``dheads_jax.files`` reads (local, gs://, ...).
    """
    videos, others = [], []
    exclude = files.absolute(exclude).rstrip("/") if exclude else None
    root = files.absolute(videos_dir).rstrip("/")

    def skip_dir(path: str) -> bool:
        return (
            posixpath.basename(path.rstrip("/")).startswith(".")
            or files.absolute(path).rstrip("/") == exclude
        )

    for folder, _, names in files.walk(root, skip_dir):
        prefix = folder[len(root) :].strip("/").replace(os.sep, "/")
        for name in names:
            ext = posixpath.splitext(name)[1].lower()
            if name.startswith(".") or ext in IGNORED_EXTENSIONS:
                continue
            rel = f"{prefix}/{name}" if prefix else name
            (videos if ext in VIDEO_EXTENSIONS else others).append(rel)
    return sorted(videos), sorted(others)


def audio_index(audio_dir: str | None) -> dict[str, str]:
    """Relative path without extension -> audio file, from one walk of ``audio_dir``.

    When several audio files share a stem, the first of AUDIO_EXTENSIONS wins (lower case
    before upper case).
    """
    if not audio_dir:
        return {}
    root = files.absolute(audio_dir).rstrip("/")
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS + tuple(e.upper() for e in AUDIO_EXTENSIONS))}
    found: dict[str, tuple[int, str]] = {}
    for folder, _, names in files.walk(root):
        prefix = folder[len(root) :].strip("/").replace(os.sep, "/")
        for name in names:
            stem, ext = posixpath.splitext(name)
            if ext not in rank:
                continue
            key = f"{prefix}/{stem}" if prefix else stem
            if key not in found or rank[ext] < found[key][0]:
                found[key] = (rank[ext], files.join(folder, name))
    return {key: path for key, (_, path) in found.items()}


def speaker_of(relative_path: str, pattern: str | None = None) -> str:
    """Speaker id: first group of ``pattern`` searched in the path, else the first folder."""
    if pattern:
        m = re.search(pattern, relative_path)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else "unknown"


# ----------------------------------------------------------------------------- layouts

LAYOUTS = ("flat", "lrw", "voxceleb")
# LRW: WORD/{train,val,test}/WORD_NNNNN.mp4 (the word is repeated in the file name).
_LRW = re.compile(r"^(?P<word>[^/]+)/(?P<split>train|val|test)/(?P=word)_(?P<num>\d+)\.[^/.]+$")
# VoxCeleb1/2: idNNNNN/VIDEO/NNNNN.mp4, optionally under the archives' dev/ or test/ (and mp4/).
_VOXCELEB = re.compile(
    r"^(?:(?P<part>dev|test)/(?:mp4/|video/)?)?(?P<speaker>id\d+)/(?P<video>[^/]+)/(?P<num>\d+)\.[^/.]+$"
)
LAYOUT_FORMS = {
    "lrw": "WORD/{train,val,test}/WORD_NNNNN.mp4",
    "voxceleb": "[dev/|test/[mp4/]]idNNNNN/VIDEO/NNNNN.mp4",
}


def parse_layout(layout: str, relative_path: str) -> tuple[str | None, str | None]:
    """(split, speaker) a folder layout gives a clip; None where the layout says nothing.

    * ``flat``: no split; the speaker is the first folder (``speaker_of``).
    * ``lrw``: the split is the folder after the word; LRW has no speaker labels ("unknown").
    * ``voxceleb``: the speaker is the ``idNNNNN`` folder; the split is "test" under a
      ``test/`` archive folder, else "train".

    Raises:
      ValueError: the path does not have the layout's form.
    """
    if layout == "flat":
        return None, speaker_of(relative_path)
    if layout == "lrw":
        m = _LRW.match(relative_path)
        if m:
            return m.group("split"), "unknown"
    elif layout == "voxceleb":
        m = _VOXCELEB.match(relative_path)
        if m:
            return ("test" if m.group("part") == "test" else "train"), m.group("speaker")
    else:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    raise ValueError(f"not in the {layout} layout ({LAYOUT_FORMS[layout]})")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """Where the clips of a dataset are, and what names their splits and speakers.

    Attributes:
      videos_dir: folder of clips (any container FFmpeg reads); local, gs://, any path
        TensorFlow's file system reads.
      audio_dir: optional parallel folder of .wav/.mp3/.flac files.
      file_lists: ``--file_list`` entries ("PATH" or "SPLIT=PATH", ``split_of_file_list``);
        they name the splits. Without them the layout does (``parse_layout``), and under the
        flat layout every video goes to "train". Any sequence; stored as a tuple.
      speaker_pattern: optional regex whose first group is the speaker id; wins over the
        layout's speaker.
      layout: folder layout, "flat", "lrw" or "voxceleb" (``parse_layout``).
    """

    videos_dir: str
    audio_dir: str | None = None
    file_lists: tuple[str, ...] = ()
    speaker_pattern: str | None = None
    layout: str = "flat"

    def __post_init__(self):
        object.__setattr__(self, "file_lists", tuple(self.file_lists))


def collect_clips(clips: ClipSpec) -> tuple[list[ClipSource], list[Skip]]:
    """Candidate clips per split, and the files rejected before decoding.

    Args:
      clips: where the clips are and how their paths name splits and speakers.

    Returns:
      (sources, skips): skips are missing listed files, non-video files in the folder and
      (with a layout) paths that do not have its form ("bad_layout").

    Raises:
      ValueError: an unknown layout.
    """
    layout, speaker_pattern = clips.layout, clips.speaker_pattern
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    sources, skips = [], []
    if clips.file_lists:
        listed = []
        for spec in clips.file_lists:
            split, path = split_of_file_list(spec)
            listed += [(split, rel) for rel in read_file_list(path)]
    else:
        videos, others = walk_videos(clips.videos_dir, exclude=clips.audio_dir)
        listed = [(None, rel) for rel in videos]
        skips += [
            Skip(
                rel,
                "train",
                "not_video",
                f"not a video file ({posixpath.splitext(rel)[1] or 'no extension'})",
            )
            for rel in others
        ]
    audio_files = audio_index(clips.audio_dir)
    root = files.absolute(clips.videos_dir)
    counters: dict[str, int] = {}
    for listed_split, rel in listed:
        try:
            layout_split, layout_speaker = parse_layout(layout, rel)
        except ValueError as e:
            skips.append(Skip(rel, listed_split or "train", "bad_layout", str(e)))
            continue
        split = listed_split or layout_split or "train"
        path = files.join(root, rel)
        if listed_split is not None and not files.isfile(path):
            skips.append(Skip(rel, split, "missing", f"listed file not found: {path}"))
            continue
        speaker = speaker_of(rel, speaker_pattern) if speaker_pattern else layout_speaker
        index = counters.setdefault(split, 0)
        counters[split] += 1
        sources.append(
            ClipSource(split, index, rel, path, audio_files.get(posixpath.splitext(rel)[0]), speaker)
        )
    return sources, skips
