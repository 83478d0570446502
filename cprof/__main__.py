"""`python -m cprof`: the same as the `cprof` console script."""

import sys

from cprof.cli.main import main

sys.exit(main())
