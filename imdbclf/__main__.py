"""`python -m imdbclf ...`: the command line lives in `imdbclf.ops.cli`."""

from imdbclf.ops.cli import main

if __name__ == "__main__":
    main()
