"""The bodies of the commands: each top-level ``run_*.py`` defines its flags and runs a ``main`` here.

A ``main`` is absl's (``app.run(main)``): it takes the arguments left after flag parsing,
reads its command's flags from ``absl.flags.FLAGS`` and returns the exit status. Expected
problems (bad inputs, a missing export) are one line on stderr naming the command, with
exit status 1 and no traceback. Heavy modules are imported inside ``main``, after
``distributed.initialize`` where the command runs on several processes.
"""


def start(argv, processes: bool = True) -> None:
    """What every command does first: refuse stray arguments, quiet the libraries' logs and,
    for a command that may run on several processes (``processes``), join them."""
    from absl import app

    from dheads_jax import distributed
    from dheads_jax.progress import quiet_library_logs

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_library_logs()
    if processes:
        distributed.initialize()
