"""The plumbing the scripts stand on: the one error type (errors.py), the command line (cli.py), safe reading
and writing, the run folder and its checkpoint, OpenBLAS's threads, the original's file format."""
