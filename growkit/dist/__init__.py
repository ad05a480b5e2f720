"""Several processes (torchrun): the process group, data-parallel passes with shared BatchNorm
statistics, and rank 0 leading a run that the other ranks follow."""
