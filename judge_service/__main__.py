import sys

from judge_service.cli import main

sys.exit(main())
