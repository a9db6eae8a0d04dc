"""
The spc daemon, for twistd: C{twistd -n spc --help}.

This dropin is data only. It names the module that holds the options and the
service, L{spc.tap}, which Twisted imports only when C{twistd spc} runs.
"""

from twisted.application.service import ServiceMaker

spcServiceMaker = ServiceMaker(
    "spc",
    "spc.tap",
    "Secure Parallel Communicator: receive messages and files over several "
    "encrypted TCP channels at once.",
    "spc",
)
