# -*- test-case-name: tests.unit.test_errors -*-
"""
One exception hierarchy for spc.

Each class's docstring is the sentence a user is shown, so the command line
and the daemon's log speak with one voice; details that help (a path, a line
number, two fingerprints) travel as the exception's arguments and are appended
by L{SPCError.__str__}.
"""

__all__ = [
    "AuthenticationFailed",
    "BadPublicKey",
    "ClientNotAuthorized",
    "ConfigurationError",
    "ConnectFailed",
    "DaemonNotRunning",
    "DiscardRefused",
    "EpochAhead",
    "FileFailed",
    "FileRefused",
    "HandshakeRefused",
    "InsecureKeyFile",
    "InsecurePath",
    "KeyFileError",
    "KeyFileExists",
    "MessageAbandoned",
    "MessageTooLarge",
    "NameUnavailable",
    "PeerBusy",
    "ProtocolError",
    "ResourceLimitExceeded",
    "SPCError",
    "SequenceExhausted",
    "ServerBusy",
    "ServerKeyChanged",
    "ServerShuttingDown",
    "SessionClosed",
    "SessionReset",
    "StatusUnavailable",
    "TLSFailed",
    "TLSFilesExist",
    "TransferFailed",
    "TransferWithdrawn",
    "TrustError",
    "TrustFileError",
    "UnknownServerKey",
]


class SPCError(Exception):
    """
    spc failed.
    """

    exitCode = 1

    def __str__(self) -> str:
        message = (self.__doc__ or "").strip().split("\n\n")[0]
        message = " ".join(message.split())
        details = ", ".join(str(arg) for arg in self.args)
        if details:
            return f"{message} {details}" if message.endswith(":") else (
                f"{message} ({details})"
            )
        return message


class ConfigurationError(SPCError):
    """
    The configuration is not valid:
    """

    exitCode = 2


class ProtocolError(SPCError):
    """
    The peer sent data that does not follow the SPC/1 protocol:
    """


class ResourceLimitExceeded(ProtocolError):
    """
    The peer exceeded a resource limit of the session:
    """


class NameUnavailable(ResourceLimitExceeded):
    """
    The inbox cannot take a file under that name:
    """


class AuthenticationFailed(ProtocolError):
    """
    A protected frame failed authentication; it was forged, corrupted or
    replayed.
    """


class EpochAhead(ProtocolError):
    """
    The peer sends under an epoch this end never got: the two ends' keys
    are out of step.
    """


class SequenceExhausted(ProtocolError):
    """
    The connection used up its sequence numbers and must be replaced.
    """


class HandshakeRefused(SPCError):
    """
    The server refused the handshake:
    """


class ServerBusy(HandshakeRefused):
    """
    The server is busy; spc retries with backoff.
    """


class KeyFileError(SPCError):
    """
    A key file could not be used:
    """


class InsecureKeyFile(KeyFileError):
    """
    The private key file is readable by other users; restrict it with
    `chmod 600` before spc will use it:
    """


class InsecurePath(KeyFileError):
    """
    Another user could change or replace this key or trust file, so spc
    will not trust it:
    """


class KeyFileExists(KeyFileError):
    """
    A key already exists there; pass --force to replace it (the old identity
    is lost):
    """


class TLSFilesExist(KeyFileError):
    """
    A TLS certificate or key already exists there; pass --force to replace
    it:
    """


class BadPublicKey(SPCError):
    """
    The public key is not acceptable to spc (it needs an RSA key of 2048 to
    4096 bits with exponent 65537, in canonical DER):
    """


class TrustFileError(SPCError):
    """
    A trust file has a line that spc cannot read:
    """


class TrustError(SPCError):
    """
    The peer is not trusted.
    """

    exitCode = 3


class UnknownServerKey(TrustError):
    """
    The server's key is not known; pin it with --server-fingerprint, add it to
    known_hosts, or pass --accept-new to trust it on first use:
    """


class ServerKeyChanged(TrustError):
    """
    WARNING: THE SERVER'S KEY HAS CHANGED. Someone may be intercepting the
    connection, or the server was given a new key. Nothing was sent. Expected
    and received fingerprints:
    """


class ClientNotAuthorized(TrustError):
    """
    The server refused this client; ask its operator to add the client's
    fingerprint to authorized_keys.
    """


class PairingRefused(TrustError):
    """
    The pairing failed:
    """


class NoInvite(PairingRefused):
    """
    The receiver has no open invite numbered:
    """


class WrongCode(PairingRefused):
    """
    The code does not match the receiver's invite (a typo?), and that invite
    is now used up; ask for a new code.
    """


class InviteRefused(SPCError):
    """
    The daemon made no invite:
    """


class TLSFailed(TrustError):
    """
    TLS:
    """


class TransferWithdrawn(SPCError):
    """
    The receiver stopped receiving the file, or cannot take it now:
    """


class TransferFailed(SPCError):
    """
    The transfer failed:
    """

    exitCode = 4


class FileFailed(TransferFailed):
    """
    A file was not delivered:

    @ivar name: the sender's name for the file.
    @ivar why: what went wrong, as a phrase that follows the name.
    """

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name} {why}")
        self.name = name
        self.why = why


class FileRefused(FileFailed):
    """
    The peer refused a file:

    @ivar reason: the peer's reason code (L{spc.protocol.filerecords.REFUSAL_REASONS}).
    @ivar text: the peer's sentence, without control characters.
    """

    def __init__(self, name: str, reason: int, text: str) -> None:
        super().__init__(name, f"was refused: {text}" if text else "was refused")
        self.reason = reason
        self.text = text


class MessageAbandoned(TransferFailed):
    """
    The peer could not deliver the message:
    """


class MessageTooLarge(TransferFailed):
    """
    The message is larger than the peer takes in one message; send it as a
    file:

    @ivar size: the message's bytes.
    @ivar limit: the most the peer takes in one message.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, over its limit of {limit}")
        self.size = size
        self.limit = limit


class PeerBusy(MessageAbandoned):
    """
    The peer had no memory to spare for the message each time it was sent,
    and it was given up; send it again later:
    """


class SessionClosed(TransferFailed):
    """
    The session closed before the peer confirmed everything:
    """


class SessionReset(SessionClosed):
    """
    The session's keys fell out of step and it was closed; a new session
    picks up what was not confirmed:
    """


class ServerShuttingDown(SessionClosed):
    """
    The server is shutting down; run the same command again once it is
    back (files resume where they stopped):
    """


class ConnectFailed(SPCError):
    """
    Could not connect to the server:
    """


class DaemonNotRunning(SPCError):
    """
    No spc daemon answers on the control socket (is it running?):
    """


class DiscardRefused(SPCError):
    """
    The daemon did not remove the unfinished file:
    """


class StatusUnavailable(SPCError):
    """
    The daemon's answer on its control socket could not be read:
    """
