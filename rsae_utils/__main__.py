"""``python -m rsae_utils``: the entry point of ``make figures`` (the runner in :mod:`rsae_utils.nbrun`).

The runner's own imports (torch, pandas, the parameter tables) take seconds; a Ctrl-C then would end in a
traceback, so they are guarded here and such an interrupt ends like any other: one line and exit status 130.
"""

import sys

from rsae_utils.errors import INTERRUPTED

try:
    from rsae_utils.nbrun import main
except KeyboardInterrupt:
    print(INTERRUPTED, file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
