"""
End-to-end tests of issue 12 (one address is enough; errors that say what
happened), with the real C{twistd -n spc} and the real C{spc send}: the
sender opens every channel from the first address, takes the suites the
daemon announces, and each failure a user can provoke is one line saying
what happened and what to do.
"""

from __future__ import annotations

import os

from twisted.internet.defer import inlineCallbacks

from spc.keys.tlscert import writeCertificate
from tests.integration.test_endtoend import Daemon, EndToEndTestCase, sharedIdentity


class OneAddressTests(EndToEndTestCase):
    """
    A daemon on four ports, and senders that name it by one address.
    """

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.daemon = yield self.startDaemon("--suites", "aes-256-gcm,chacha20,aes-256-gcm,cbc")

    def oneAddress(self, *extra: str, pin: bool = True):
        args = ["send", "--key-dir", self.clientKeys, "--server", f"127.0.0.1:{self.ports[0]}"]
        if pin:
            args += ["--server-fingerprint", self.serverFingerprint]
        return self.spc(*args, *extra)

    @inlineCallbacks
    def test_everyChannel(self):
        """
        C{--server HOST:PORT} alone delivers over all four channels, with
        the daemon's suites, which the sender was never told.
        """
        result = yield self.oneAddress("--message", "one address")
        self.assertDelivered(result, 1, channels=4)
        self.assertRecord(self.storedMessages()[0], "one address")

    @inlineCallbacks
    def test_suiteNotAccepted(self):
        """
        A sender whose C{--suites} leaves out one the daemon announces
        stops before sending anything: one line naming the channel and the
        suite, exit code 2.
        """
        result = yield self.oneAddress("--suites", "chacha20,aes-256-cbc", "--message", "x")
        self.assertFailed(result, 2, "spc: the daemon's channel 0 uses AES-256-GCM")
        self.assertEqual(self.storedMessages(), [])

    @inlineCallbacks
    def test_portsOutOfOrder(self):
        """
        C{--ports} in another order than the daemon's channels is one line
        naming the daemon's ports in order, exit code 2.
        """
        ports = self.ports[1:2] + self.ports[:1] + self.ports[2:]
        result = yield self.spc(
            "send", "--key-dir", self.clientKeys, "--server", "127.0.0.1",
            "--ports", ",".join(map(str, ports)),
            "--server-fingerprint", self.serverFingerprint, "--message", "x",
        )
        self.assertFailed(
            result, 2, "reached the daemon's channel 1",
            f"(ports {', '.join(map(str, self.ports))})",
        )

    @inlineCallbacks
    def test_typoInPin(self):
        """
        A C{--server-fingerprint} that does not match (a typo) says so, and
        does not claim the server's key changed: nothing was ever pinned.
        """
        typo = sharedIdentity("other").fingerprint
        result = yield self.spc(
            "send", "--key-dir", self.clientKeys, "--server", f"127.0.0.1:{self.ports[0]}",
            "--server-fingerprint", typo, "--message", "x",
        )
        self.assertFailed(result, 3, "--server-fingerprint", "typo", f"expected {typo}")
        self.assertNotIn("CHANGED", result.err)

    @inlineCallbacks
    def test_pinRecordedThenChanged(self):
        """
        C{--server-fingerprint} with C{--accept-new} records the pin under
        C{HOST:FIRSTPORT}; later sends need no pin.  When the daemon's key
        changes, the warning names the C{spc forget-host} command; after
        it, C{--accept-new} records the new key.
        """
        name = f"127.0.0.1:{self.ports[0]}"
        knownHosts = os.path.join(self.clientKeys, "known_hosts")
        result = yield self.oneAddress("--accept-new", "--message", "first")
        self.assertDelivered(result, 1)
        self.assertIn(f"added {name} {self.serverFingerprint}", result.err)
        with open(knownHosts) as f:
            self.assertEqual(f.read(), f"{name} {self.serverFingerprint}\n")
        result = yield self.oneAddress("--message", "second", pin=False)
        self.assertDelivered(result, 1)

        yield self.daemon.stop()
        impostorKeys = self.makeKeyDir("impostor")
        self.authorize(impostorKeys, "client")
        yield self.startDaemon(keyDir=impostorKeys)
        result = yield self.oneAddress("--message", "third", pin=False)
        command = f"spc forget-host --key-dir {self.clientKeys} {name}"
        self.assertFailed(result, 3, "CHANGED", command)
        forgot = yield self.spc("forget-host", "--key-dir", self.clientKeys, name)
        self.assertEqual(forgot.code, 0, forgot)
        self.assertEqual(
            forgot.out, f"Removed from {knownHosts}: {name} {self.serverFingerprint}\n"
        )
        result = yield self.oneAddress("--accept-new", "--message", "fourth", pin=False)
        self.assertEqual(result.code, 0, result)
        self.assertIn(sharedIdentity("impostor").fingerprint, result.err)

    @inlineCallbacks
    def test_refusedClientToldItsFingerprint(self):
        """
        A client the daemon does not list is told the line to add to its
        authorized_keys: its own fingerprint.
        """
        stranger = self.makeKeyDir("other", "stranger")
        result = yield self.spc(
            "send", "--key-dir", stranger, "--server", f"127.0.0.1:{self.ports[0]}",
            "--server-fingerprint", self.serverFingerprint, "--message", "x",
        )
        self.assertFailed(
            result, 3, f"authorized_keys: {sharedIdentity('other').fingerprint}"
        )

    @inlineCallbacks
    def test_tlsToPlainPort(self):
        """
        C{tls:} to a port without TLS is no trust failure: exit code 1,
        saying the port does not speak TLS (or, when the daemon's reset,
        seeing a TLS hello for a frame, overtakes its hello, that the port
        did not answer), and to connect without C{tls:}.
        """
        result = yield self.spc(
            "send", "--key-dir", self.clientKeys,
            "--server", f"tls:127.0.0.1:{self.ports[0]}", "--tls-fingerprint",
            "SHA256:" + "A" * 43, "--server-fingerprint", self.serverFingerprint,
            "--message", "x",
        )
        self.assertFailed(result, 1, f"127.0.0.1:{self.ports[0]} ", "connect without tls:")


class OneTLSAddressTests(EndToEndTestCase):
    """
    A daemon on two TLS ports and one plain port, and senders that name a
    TLS port.
    """

    @inlineCallbacks
    def setUp(self):
        super().setUp()
        self.authorize(self.serverKeys, "client")
        self.certificate = writeCertificate("localhost", os.path.join(self.root, "tls"))
        listen = []
        for port in self.ports[:2]:
            listen += [
                "--listen",
                f"ssl:{port}:privateKey={self.certificate.keyPath}"
                f":certKey={self.certificate.certificatePath}:interface=127.0.0.1",
            ]
        self.daemon = Daemon(
            self.root, self.env,
            ["--key-dir", self.serverKeys, "--inbox", self.inbox, *listen,
             "--listen", f"tcp:{self.ports[2]}:interface=127.0.0.1"],
        )
        self.addCleanup(self.checkDaemonLog, self.daemon)
        self.addCleanup(self.daemon.stop)
        yield self.daemon.start()

    def sendTo(self, server: str, *extra: str):
        return self.spc(
            "send", "--key-dir", self.clientKeys, "--server", server,
            "--server-fingerprint", self.serverFingerprint, "--message", "über TLS", *extra,
        )

    @inlineCallbacks
    def test_trustRootsForEveryChannel(self):
        """
        C{--server tls:HOST:PORT:trustRoots=CERT} opens both TLS channels
        with the same trust roots, and leaves out the plain one.
        """
        result = yield self.sendTo(
            f"tls:localhost:{self.ports[0]}:trustRoots={self.certificate.certificatePath}"
        )
        self.assertDelivered(result, 1, channels=2)

    @inlineCallbacks
    def test_tlsPinRecorded(self):
        """
        C{--tls-fingerprint} with C{--accept-new} records the TLS pin in
        known_hosts; the next send to that server uses it unasked.
        """
        name = f"127.0.0.1:{self.ports[0]}"
        result = yield self.sendTo(
            f"tls:{name}", "--tls-fingerprint", self.certificate.fingerprint, "--accept-new"
        )
        self.assertDelivered(result, 1, channels=2)
        self.assertIn(f"added tls:{name} {self.certificate.fingerprint}", result.err)
        result = yield self.sendTo(f"tls:{name}")
        self.assertDelivered(result, 1, channels=2)

    @inlineCallbacks
    def test_untrustedCertificate(self):
        """
        Without trust roots or a pin, a self-signed certificate is refused
        (exit code 3) with the two ways to trust it.
        """
        result = yield self.sendTo(f"tls:localhost:{self.ports[0]}")
        self.assertFailed(result, 3, "certificate verify failed", "trustRoots=",
                          "--tls-fingerprint")

    @inlineCallbacks
    def test_plainToTLSPort(self):
        """
        Plain TCP to a TLS port: the daemon, waiting for TLS, says nothing
        and closes; one line saying the port gave no answer and that a TLS
        port wants C{tls:}, exit code 1.
        """
        result = yield self.sendTo(f"127.0.0.1:{self.ports[0]}")
        self.assertFailed(result, 1, f"127.0.0.1:{self.ports[0]}", "then connect with tls:")
