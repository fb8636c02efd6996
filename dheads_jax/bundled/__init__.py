"""The default model that ships inside the package, so a first video needs no training.

``default_export()`` is the path of its export folder (``dheads_jax/bundled/default/``),
which ``run_sample.py`` and ``run_app.py`` use when no ``--export`` is given. Its
``export.json`` records how it was made (command, commit, data and licence, measured
figures); ``scripts/bundled_model.sh`` retrains it.
"""

from __future__ import annotations

import os

DEFAULT_EXPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default")


class NoBundledModel(FileNotFoundError):
    """The package was installed without its default model."""


def default_export() -> str:
    """The bundled export folder.

    Raises:
      NoBundledModel: it is missing (a checkout without it); the message says what to do.
    """
    if not os.path.exists(os.path.join(DEFAULT_EXPORT, "export.json")):
        raise NoBundledModel(
            f"{DEFAULT_EXPORT}: the bundled default model is missing; pass --export=EXPORT_DIR "
            "or retrain it with bash scripts/bundled_model.sh"
        )
    return DEFAULT_EXPORT
