"""The engine every method runs on: configs and flags, schedules, optimizers that follow growth,
surgery, the passes over the data, the trainer, its callbacks, checkpoints and run records.

It imports nothing from methods/, runs/, papers/ or viz/."""
