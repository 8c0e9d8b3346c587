import sys

from recsys.datasets.cli import main

sys.exit(main())
