"""The command lines of ``python -m dheads_jax.convert`` and ``python -m dheads_jax.convert.sda``.

absl flags, defined on a ``FlagValues`` of their own rather than on absl's global ``FLAGS``:
these modules are libraries too (``generate`` imports ``sda``), and their ``--audio`` or
``--output`` would clash there with the flags of the command that imports them. Each
``main(argv)`` parses its list (``sys.argv[1:]`` by default) into a new set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import flags

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")


def parse(
    prog: str, description: str, argv: Sequence[str] | None, define: Callable[[flags.FlagValues], None]
) -> flags.FlagValues:
    """The flags that ``define(values)`` defines, parsed from ``argv``.

    ``--help`` prints the description and the flags and exits with status 0; a bad command
    line (an unknown flag, a bad value, a required flag missing, a positional argument) is
    one line on stderr naming ``prog``, exit status 2.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    values = flags.FlagValues()
    define(values)
    if any(arg in HELP_FLAGS for arg in args):
        print(f"usage: {prog} [flags]\n\n{description}\n\nflags:")
        for name in sorted(values):
            flag = values[name]
            default = "" if flag.default is None else f" (default: {flag.default_as_str})"
            print(f"  --{'[no]' if flag.boolean else ''}{name}: {flag.help}{default}")
        raise SystemExit(0)
    try:
        rest = values([prog, *args])[1:]
        problem = f"unexpected arguments: {rest}" if rest else None
    except flags.Error as e:  # several missing flags are one line each
        problem = "; ".join(str(e).splitlines())
    if problem:
        print(f"{prog}: error: {problem} (see --help)", file=sys.stderr)
        raise SystemExit(2)
    return values
