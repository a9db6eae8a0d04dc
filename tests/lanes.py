"""
A worker lane the test runs by hand: jobs wait until the test runs them,
in order, and each is reported as soon as it ran, as a real lane's would
be on the reactor thread (L{spc.lanes}).
"""

from __future__ import annotations

from twisted.python.failure import Failure

__all__ = ["QueuedLane"]


class QueuedLane:
    """
    @ivar jobs: C{(job, report)} pairs not yet run, oldest first.
    @ivar ran: how many jobs ran so far.
    """

    name = "queued"

    def __init__(self) -> None:
        self.jobs: list = []
        self.ran = 0

    @property
    def pending(self) -> int:
        return len(self.jobs)

    def submit(self, job, report) -> None:
        self.jobs.append((job, report))

    def runOne(self) -> None:
        """
        Run the oldest job and report it.
        """
        job, report = self.jobs.pop(0)
        try:
            result = job()
        except BaseException:
            result = Failure()
        self.ran += 1
        report(result)

    def runAll(self) -> None:
        """
        Run jobs, those their reports submit included, until none is left.
        """
        while self.jobs:
            self.runOne()

    def stop(self) -> None:
        pass
