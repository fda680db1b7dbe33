import sys

from kubeupdate.cli import main

sys.exit(main())
