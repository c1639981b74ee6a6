"""The pure domain core: a model stream's state, `evolve` and `decide`. No I/O, no clock, no ids."""
