"""End-to-end tests: the command line, the notebooks, training on a GPU."""
