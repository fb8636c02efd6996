"""File access on local paths and on anything TensorFlow's file system layer reads (gs://, ...).

Local paths go through ``os`` (no TensorFlow import, so data-preparation workers stay light);
a path with a scheme (``gs://bucket/x``, ``ram://x``) goes through ``tf.io.gfile``, imported on
first use. The data preparation lists, reads and writes through these few functions only.
"""

from __future__ import annotations

import os
import posixpath
import shutil


def is_remote(path: str) -> bool:
    """Whether ``path`` has a scheme other than ``file://``."""
    return "://" in str(path) and not str(path).startswith("file://")


def _gfile():
    import tensorflow as tf  # noqa: PLC0415 - only for remote paths

    return tf.io.gfile


def local(path: str) -> str:
    """``path`` without a ``file://`` prefix."""
    return path[len("file://") :] if path.startswith("file://") else path


def join(*parts: str) -> str:
    """Joins with "/" for remote paths, ``os.path.join`` otherwise."""
    return posixpath.join(*parts) if is_remote(parts[0]) else os.path.join(*parts)


def absolute(path: str) -> str:
    """An absolute local path; remote paths unchanged."""
    return path if is_remote(path) else os.path.abspath(local(path))


def isfile(path: str) -> bool:
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(local(path))


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(local(path))


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(local(path))


def listdir(path: str) -> list[str]:
    """Sorted entry names (no trailing "/")."""
    names = _gfile().listdir(path) if is_remote(path) else os.listdir(local(path))
    return sorted(n.rstrip("/") for n in names)


def walk(top: str, skip_dir=lambda path: False):
    """Sorted top-down walk: yields (folder, [sub-folder names], [file names]).

    Args:
      top: the folder.
      skip_dir: called with a sub-folder's path; True leaves it (and what is under it) out.
    """
    dirs, files = [], []
    for name in listdir(top):
        path = join(top, name)
        if isdir(path):
            if not skip_dir(path):
                dirs.append(name)
        else:
            files.append(name)
    yield top, dirs, files
    for name in dirs:
        yield from walk(join(top, name), skip_dir)


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        try:
            with _gfile().GFile(path, "rb") as f:
                return f.read()
        except Exception as e:  # tf.errors.OpError is no OSError; callers catch OSError.
            raise OSError(f"cannot read {path}: {e}") from e
    with open(local(path), "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def makedirs(path: str) -> None:
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(local(path), exist_ok=True)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` under a temporary name beside ``path``, then renames it."""
    tmp = f"{path}.tmp-{os.getpid()}"
    if is_remote(path):
        gfile = _gfile()
        with gfile.GFile(tmp, "wb") as f:
            f.write(data)
        gfile.rename(tmp, path, overwrite=True)
        return
    with open(local(tmp), "wb") as f:
        f.write(data)
    os.replace(local(tmp), local(path))


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` (UTF-8) under a temporary name beside ``path``, then renames it."""
    write_bytes_atomic(path, text.encode("utf-8"))


def remove_tree(path: str) -> None:
    """Removes a folder and everything under it, if it exists."""
    if is_remote(path):
        gfile = _gfile()
        if gfile.exists(path):
            gfile.rmtree(path)
    else:
        shutil.rmtree(local(path), ignore_errors=True)
