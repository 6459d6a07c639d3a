"""`python -m bench`: every benchmark, side by side."""

import sys

from bench import kernel

kernel.main(sys.argv[1:])
