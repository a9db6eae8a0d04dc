"""
Trial tests for spc: one module per spc module, plus end-to-end suites.
"""

import os

# spc refuses key and trust files that other users could write, and so
# directories that their group may write (spc.keys.keyfiles.checkPrivatePath).
# The fixtures make their directories and files with the default modes, so
# the suite runs with the usual umask, 022, whatever the caller's is.
os.umask(0o022)
