"""`python -m blockmesh.cli`, the same as the `blockmesh` script."""

from blockmesh.cli.main import main

main()
