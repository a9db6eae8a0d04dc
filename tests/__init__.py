"""
Trial tests for spc, in three tiers, each a package:

  - L{tests.unit}: the code is called directly; nothing is scheduled and
    nothing is connected.  A test may give it the time (C{task.Clock} read
    for C{seconds()}, never advanced to fire anything), files in its
    temporary directory, and a reactor it never runs.
  - L{tests.memory}: the code is given a fake reactor and never touches the
    real one: C{task.Clock} to schedule on, connections through
    L{twisted.test.iosim} or a C{StringTransport}, a C{MemoryReactor} to
    listen on.
  - L{tests.integration}: real sockets on the loopback interface, the real
    reactor, and the real programs (C{twistd -n spc}, C{spc send}) in
    processes of their own.

A module is named after the module of spc it tests; a module whose tests
span tiers is split along its test classes, one module of the same name in
each tier.  The fast tiers run in seconds (C{trial tests.unit tests.memory});
C{trial tests} runs everything.  Test modules import helpers from their own
tier or a lower one; the fakes of spc's parts shared by several modules are
in L{tests.fakes}, keys and recording owners in L{tests.common}.
"""

import os

# spc refuses key and trust files that other users could write, and so
# directories that their group may write (spc.keys.keyfiles.checkPrivatePath).
# The fixtures make their directories and files with the default modes, so
# the suite runs with the usual umask, 022, whatever the caller's is.
os.umask(0o022)
