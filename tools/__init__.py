"""Developer tools (benchmarks, speed measurements, sweeps), run as modules from the repository root:
`python -m tools.<name> --help`."""
