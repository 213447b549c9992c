import sys

from hwlat.cli.main import main

sys.exit(main())
