"""One-off measurements of the study's speed and reproducibility, run as modules from the repository root:
`python -m benchmarks.<name> --help`. Beside each script, <name>.md holds the figures it last printed, with the date
and the machine."""
