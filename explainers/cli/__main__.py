import sys

from explainers.cli.commands import main

sys.exit(main())
