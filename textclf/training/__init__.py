"""Training: the recipe (setup steps and an explicit epoch loop), the loss, checkpoints."""
