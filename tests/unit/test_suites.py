"""
Tests for L{spc.crypto.suites}: published known answers, round trips, and that
every tampered bit, wrong key and wrong sequence number is refused with the
one exception the record layer handles.
"""

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from spc.crypto import suites
from spc.errors import AuthenticationFailed, ConfigurationError
from spc.protocol import frames


def unhex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


class A256CBCHS512KnownAnswerTests(unittest.SynchronousTestCase):
    """
    RFC 7518 appendix B.3, AES_256_CBC_HMAC_SHA_512.
    """

    key = bytes(range(64))
    plaintext = (
        b"A cipher system must not be required to be secret, and it must be "
        b"able to fall into the hands of the enemy without inconvenience"
    )
    iv = unhex("1a f3 8c 2d c2 b9 6f fd d8 66 94 09 23 41 bc 04")
    aad = b"The second principle of Auguste Kerckhoffs"
    ciphertext = unhex(
        """
        4a ff aa ad b7 8c 31 c5 da 4b 1b 59 0d 10 ff bd
        3d d8 d5 d3 02 42 35 26 91 2d a0 37 ec bc c7 bd
        82 2c 30 1d d6 7c 37 3b cc b5 84 ad 3e 92 79 c2
        e6 d1 2a 13 74 b7 7f 07 75 53 df 82 94 10 44 6b
        36 eb d9 70 66 29 6a e6 42 7e a7 5c 2e 08 46 a1
        1a 09 cc f5 37 0d c8 0b fe cb ad 28 c7 3f 09 b3
        a3 b7 5e 66 2a 25 94 41 0a e4 96 b2 e2 e6 60 9e
        31 e6 e0 2c c8 37 f0 53 d2 1f 37 ff 4f 51 95 0b
        be 26 38 d0 9d d7 a4 93 09 30 80 6d 07 03 b1 f6
        """
    )
    tag = unhex(
        """
        4d d3 b4 c0 88 a7 f4 5c 21 68 39 64 5b 20 12 bf
        2e 62 69 a8 c5 6a 81 6d bc 1b 26 77 61 95 5b c5
        """
    )

    def test_seal(self):
        """
        Sealing the RFC's plaintext with its IV gives IV, E and T exactly.
        """
        cipher = suites.A256CBC_HS512.cipher(self.key)
        body = cipher.sealWithIV(self.iv, self.aad, self.plaintext)
        self.assertEqual(body, self.iv + self.ciphertext + self.tag)

    def test_open(self):
        """
        Opening the RFC's body gives back its plaintext.
        """
        cipher = suites.A256CBC_HS512.cipher(self.key)
        opened = cipher.open(0, self.aad, self.iv + self.ciphertext + self.tag)
        self.assertEqual(opened, self.plaintext)

    def test_sealedLength(self):
        """
        C{sealedLength} predicts the body length for every padding case.
        """
        cipher = suites.A256CBC_HS512.cipher(self.key)
        for size in range(0, 70):
            self.assertEqual(
                len(cipher.seal(0, b"", bytes(size))), cipher.sealedLength(size)
            )

    def test_macCheckedBeforeUnpadding(self):
        """
        A body whose tag fails is refused before it is decrypted, so bad
        padding under a bad tag is no different from good padding.
        """
        cipher = suites.A256CBC_HS512.cipher(self.key)
        calls = []
        self.patch(
            suites.padding.PKCS7, "unpadder", lambda self: calls.append(1)
        )
        body = bytearray(self.iv + self.ciphertext + self.tag)
        body[-1] ^= 1
        self.assertRaises(AuthenticationFailed, cipher.open, 0, self.aad, bytes(body))
        self.assertEqual(calls, [])

    def test_badPaddingUnderGoodTag(self):
        """
        A peer that MACs badly padded data is refused with the same
        exception as a forgery.
        """
        cipher = suites.A256CBC_HS512.cipher(self.key)
        iv = bytes(16)
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        encryptor = Cipher(algorithms.AES(self.key[32:]), modes.CBC(iv)).encryptor()
        unpadded = encryptor.update(bytes(32)) + encryptor.finalize()
        body = iv + unpadded
        body += cipher._tag(self.aad, body)
        self.assertRaises(AuthenticationFailed, cipher.open, 0, self.aad, body)


class ChaCha20Poly1305KnownAnswerTests(unittest.SynchronousTestCase):
    """
    RFC 8439 section 2.8.2, through the TLS 1.3 nonce construction: with a
    per-key IV equal to the RFC's nonce, sequence number 0 uses it unchanged.
    """

    key = bytes(range(0x80, 0xA0))
    nonce = unhex("07000000 40414243 44454647")
    aad = unhex("50515253 c0c1c2c3 c4c5c6c7")
    plaintext = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only "
        b"one tip for the future, sunscreen would be it."
    )
    sealed = unhex(
        """
        d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
        3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
        92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
        3ff4def08e4b7a9de576d26586cec64b6116
        1ae10b594f09e26a7e902ecbd0600691
        """
    )

    def test_seal(self):
        """
        Sealing gives the RFC's ciphertext and tag.
        """
        cipher = suites.CHACHA20_POLY1305.cipher(self.key, self.nonce)
        self.assertEqual(cipher.seal(0, self.aad, self.plaintext), self.sealed)

    def test_open(self):
        """
        Opening gives the RFC's plaintext.
        """
        cipher = suites.CHACHA20_POLY1305.cipher(self.key, self.nonce)
        self.assertEqual(cipher.open(0, self.aad, self.sealed), self.plaintext)

    def test_nonceIsIVXorSequence(self):
        """
        Sequence number C{n} seals with nonce C{iv XOR n}, so a cipher whose
        IV already holds the XOR with 5 gives the RFC's answer at sequence 5.
        """
        shifted = (int.from_bytes(self.nonce, "big") ^ 5).to_bytes(12, "big")
        cipher = suites.CHACHA20_POLY1305.cipher(self.key, shifted)
        self.assertEqual(cipher.seal(5, self.aad, self.plaintext), self.sealed)


class SuiteRegistryTests(unittest.SynchronousTestCase):
    """
    Suites are found by id and name, and the default map is the user's.
    """

    def test_byID(self):
        """
        The wire ids of the three suites.
        """
        self.assertIs(suites.suiteByID(1), suites.A256CBC_HS512)
        self.assertIs(suites.suiteByID(2), suites.CHACHA20_POLY1305)
        self.assertIs(suites.suiteByID(3), suites.AES256_GCM)
        self.assertRaises(KeyError, suites.suiteByID, 4)

    def test_byName(self):
        """
        Names and the user's words for them resolve; others are a
        configuration error naming the known suites.
        """
        self.assertIs(suites.suiteByName("AES-256-CBC"), suites.A256CBC_HS512)
        self.assertIs(suites.suiteByName("chacha20"), suites.CHACHA20_POLY1305)
        self.assertIs(suites.suiteByName("aes-256-gcm"), suites.AES256_GCM)
        error = self.assertRaises(ConfigurationError, suites.suiteByName, "rc4")
        self.assertIn("ChaCha20-Poly1305", str(error))

    def test_defaultMap(self):
        """
        Even port indexes use AES-256-CBC, odd ones ChaCha20.
        """
        self.assertEqual(
            [suites.defaultSuiteFor(i).suiteID for i in range(4)], [1, 2, 1, 2]
        )

    def test_overheadFitsWire(self):
        """
        The wire's frame cap leaves room for the largest suite overhead.
        """
        self.assertLessEqual(suites.MAX_OVERHEAD, frames.MAX_SUITE_OVERHEAD)

    def test_wrongKeyLength(self):
        """
        A key of the wrong size is a programming error, refused at once.
        """
        self.assertRaises(ValueError, suites.AES256_GCM.cipher, bytes(16), bytes(12))
        self.assertRaises(ValueError, suites.A256CBC_HS512.cipher, bytes(32))


def header(seq: int, length: int, epoch: int = 0) -> bytes:
    return frames.ProtectedHeader(2, b"S" * 16, 1, epoch, seq).aad(length)


class TamperTests(unittest.SynchronousTestCase):
    """
    For every suite: every single-bit flip of the body (IV, ciphertext,
    tag) or of the associated data is refused, and so are a wrong key and a
    wrong sequence number (which reaches CBC through the header in the
    associated data).
    """

    plaintext = b"MSG:" + bytes(range(40))

    def ciphers(self, suite):
        key = bytes(range(suite.keyLength))
        iv = bytes(range(100, 100 + suite.ivLength))
        return suite.cipher(key, iv), key, iv

    def test_roundTrip(self):
        """
        What is sealed opens to the same bytes, for every suite.
        """
        for suite in suites.SUITES:
            cipher, _, _ = self.ciphers(suite)
            aad = header(7, 100)
            body = cipher.seal(7, aad, self.plaintext)
            self.assertEqual(len(body), cipher.sealedLength(len(self.plaintext)))
            self.assertEqual(cipher.open(7, aad, body), self.plaintext)

    def test_everyBodyBitFlipRejected(self):
        """
        Each bit of the sealed body, flipped alone, is refused.
        """
        for suite in suites.SUITES:
            cipher, _, _ = self.ciphers(suite)
            aad = header(3, 100)
            body = cipher.seal(3, aad, self.plaintext)
            for bit in range(len(body) * 8):
                tampered = bytearray(body)
                tampered[bit // 8] ^= 1 << (bit % 8)
                self.assertRaises(
                    AuthenticationFailed, cipher.open, 3, aad, bytes(tampered)
                )

    def test_everyAADBitFlipRejected(self):
        """
        Each bit of the associated data (length prefix and header), flipped
        alone, is refused.
        """
        for suite in suites.SUITES:
            cipher, _, _ = self.ciphers(suite)
            aad = header(3, 100)
            body = cipher.seal(3, aad, self.plaintext)
            for bit in range(len(aad) * 8):
                tampered = bytearray(aad)
                tampered[bit // 8] ^= 1 << (bit % 8)
                self.assertRaises(
                    AuthenticationFailed, cipher.open, 3, bytes(tampered), body
                )

    def test_truncationRejected(self):
        """
        Every proper prefix of a body is refused.
        """
        for suite in suites.SUITES:
            cipher, _, _ = self.ciphers(suite)
            aad = header(0, 100)
            body = cipher.seal(0, aad, self.plaintext)
            for size in range(len(body)):
                self.assertRaises(
                    AuthenticationFailed, cipher.open, 0, aad, body[:size]
                )

    def test_wrongKeyRejected(self):
        """
        A different key does not open the frame.
        """
        for suite in suites.SUITES:
            cipher, key, iv = self.ciphers(suite)
            aad = header(0, 100)
            body = cipher.seal(0, aad, self.plaintext)
            other = suite.cipher(bytes([key[0] ^ 1]) + key[1:], iv)
            self.assertRaises(AuthenticationFailed, other.open, 0, aad, body)

    def test_wrongSequenceRejected(self):
        """
        A frame presented under another sequence number is refused.
        """
        for suite in suites.SUITES:
            cipher, _, _ = self.ciphers(suite)
            body = cipher.seal(9, header(9, 100), self.plaintext)
            self.assertRaises(
                AuthenticationFailed, cipher.open, 10, header(10, 100), body
            )

    @settings(max_examples=50, deadline=None)
    @given(
        suiteIndex=st.integers(0, len(suites.SUITES) - 1),
        seq=st.integers(0, 2**48),
        plaintext=st.binary(max_size=300),
        aad=st.binary(max_size=64),
    )
    def test_roundTripProperty(self, suiteIndex, seq, plaintext, aad):
        """
        Any plaintext and associated data round-trip under any sequence
        number.
        """
        cipher, _, _ = self.ciphers(suites.SUITES[suiteIndex])
        self.assertEqual(cipher.open(seq, aad, cipher.seal(seq, aad, plaintext)), plaintext)
