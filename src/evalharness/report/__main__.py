import sys

from evalharness.report.build import main

sys.exit(main())
