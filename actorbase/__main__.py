"""`python -m actorbase` is the `actorbase` command."""

import sys

from actorbase.cli import main

sys.exit(main())
