"""`python -m reconciler` runs the same command line as `ocpi-parties`."""

from reconciler.cli import main

if __name__ == "__main__":
    main(prog_name="ocpi-parties")
