import sys

from detection_replay.cli import main

sys.exit(main())
