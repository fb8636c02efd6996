"""Training: objective, state, step factory, loop, and the export of its checkpoints."""
