"""Training: objective, state, step factory, loop."""
