"""``python -m rsae_utils``: the entry point of ``make figures`` (the runner in :mod:`rsae_utils.nbrun`).

The runner's own imports (torch, pandas, the parameter tables) take seconds, and nothing is running or written
yet. A Ctrl-C then must end like any other interrupt: one line and exit status 130. A KeyboardInterrupt cannot
promise that: raised inside a library's ``__del__`` it is printed and dropped ("Exception ignored in"), and the
run goes on. So until :class:`rsae_utils.runguard.RunSession` installs its own handler, SIGINT exits at once.
"""

import os
import signal
import sys

from rsae_utils.errors import INTERRUPTED


def _exit_interrupted(signum: int, frame: object) -> None:
    print(INTERRUPTED, file=sys.stderr, flush=True)
    os._exit(130)


# A runner started with SIGINT ignored (a shell's background job) keeps ignoring it.
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _exit_interrupted)

from rsae_utils.nbrun import main  # noqa: E402  (after the handler: these imports are the slow part)

if __name__ == "__main__":
    sys.exit(main())
