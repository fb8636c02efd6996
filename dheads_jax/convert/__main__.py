"""``python -m dheads_jax.convert``: see ``dheads_jax.convert.converter``."""

import sys

from dheads_jax.convert.converter import main

if __name__ == "__main__":
    sys.exit(main())
