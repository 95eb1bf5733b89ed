"""`python -m gsv_edu.train`: the command line of `gsv_edu.train.cli`."""
import sys

from gsv_edu.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
