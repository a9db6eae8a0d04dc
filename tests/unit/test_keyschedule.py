"""
Tests for L{spc.crypto.keyschedule}: RFC 5869 known answers and the separation of
every derived key.
"""

from twisted.trial import unittest

from spc.crypto import keyschedule as ks


def unhex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


class HKDFKnownAnswerTests(unittest.SynchronousTestCase):
    """
    RFC 5869 appendix A, test cases 1 to 3 (SHA-256).
    """

    cases = [
        (
            b"\x0b" * 22,
            unhex("000102030405060708090a0b0c"),
            unhex("f0f1f2f3f4f5f6f7f8f9"),
            42,
            unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"),
            unhex(
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                "34007208d5b887185865"
            ),
        ),
        (
            bytes(range(0x00, 0x50)),
            bytes(range(0x60, 0xB0)),
            bytes(range(0xB0, 0x100)),
            82,
            unhex("06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244"),
            unhex(
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                "cc30c58179ec3e87c14c01d5c1f3434f1d87"
            ),
        ),
        (
            b"\x0b" * 22,
            b"",
            b"",
            42,
            unhex("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"),
            unhex(
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                "9d201395faa4b61a96c8"
            ),
        ),
    ]

    def test_extract(self):
        """
        Extract gives each case's PRK.
        """
        for ikm, salt, _, _, prk, _ in self.cases:
            self.assertEqual(ks.extract(salt, ikm), prk)

    def test_expand(self):
        """
        Expand gives each case's OKM.
        """
        for _, _, info, length, prk, okm in self.cases:
            self.assertEqual(ks.hkdfExpand(prk, info, length), okm)


class LabelTests(unittest.SynchronousTestCase):
    """
    The labelled expand puts the protocol prefix, label, a zero byte and
    the context into C{info}, and different labels give unrelated keys.
    """

    secret = bytes(range(32))

    def test_infoLayout(self):
        """
        C{expand} is HKDF-Expand with info C{"SPC/1 " label 0x00 context}.
        """
        self.assertEqual(
            ks.expand(self.secret, b"key", b"ctx", 32),
            ks.hkdfExpand(self.secret, b"SPC/1 key\x00ctx", 32),
        )

    def test_labelIsNotPrefix(self):
        """
        The zero byte separates label from context: C{("k", "ey")} and
        C{("ke", "y")} differ.
        """
        self.assertNotEqual(
            ks.expand(self.secret, b"k", b"ey", 32),
            ks.expand(self.secret, b"ke", b"y", 32),
        )


class TrafficKeyTests(unittest.SynchronousTestCase):
    """
    Traffic keys differ by direction, channel, suite, transcript and epoch.
    """

    def derive(self, **overrides):
        args = dict(
            epochSecret=b"E" * 32,
            connection=b"C" * 32,
            suiteID=2,
            channel=1,
            direction=ks.CLIENT_TO_SERVER,
            thConn=b"T" * 32,
            keyLength=32,
            ivLength=12,
        )
        args.update(overrides)
        secrets = ks.trafficSecrets(**args)
        return secrets.key + secrets.iv

    def test_separation(self):
        """
        Changing any one input changes the key and IV.
        """
        base = self.derive()
        variants = [
            self.derive(direction=ks.SERVER_TO_CLIENT),
            self.derive(channel=2),
            self.derive(suiteID=3),
            self.derive(thConn=b"U" * 32),
            self.derive(epochSecret=b"F" * 32),
            self.derive(connection=b"D" * 32),
        ]
        self.assertEqual(len({base, *variants}), 1 + len(variants))

    def test_lengths(self):
        """
        The CBC suite gets 64 key bytes and no IV; AEADs 32 and 12.
        """
        cbc = ks.trafficSecrets(b"E" * 32, b"C" * 32, 1, 0, ks.CLIENT_TO_SERVER,
                                b"T" * 32, 64, 0)
        self.assertEqual((len(cbc.key), cbc.iv), (64, b""))
        self.assertNotIn(cbc.key.hex(), repr(cbc))

    def test_rotationChain(self):
        """
        The next epoch secret depends on the previous one and on both fresh
        secrets, and the confirm key differs from the epoch secret.
        """
        base = ks.rotationEpochSecret(b"P" * 32, 1, b"R" * 32, b"D" * 32, b"H" * 32)
        self.assertNotEqual(
            base, ks.rotationEpochSecret(b"Q" * 32, 1, b"R" * 32, b"D" * 32, b"H" * 32)
        )
        self.assertNotEqual(
            base, ks.rotationEpochSecret(b"P" * 32, 1, b"S" * 32, b"D" * 32, b"H" * 32)
        )
        self.assertNotEqual(
            base, ks.rotationEpochSecret(b"P" * 32, 2, b"R" * 32, b"D" * 32, b"H" * 32)
        )
        self.assertNotEqual(ks.rotationConfirmKey(base), base)

    def test_handshakeDerivations(self):
        """
        Session id, Finished key, first epoch, join and connection secrets
        are distinct and of the right sizes.
        """
        hs = ks.handshakeSecret(b"e" * 32, b"t" * 32)
        values = [
            ks.sessionID(hs, b"2" * 32),
            ks.finishedKey(hs, b"2" * 32),
            ks.initialEpochSecret(hs, b"3" * 32),
            ks.joinSecret(b"S" * 32, b"i" * 16, 0, b"e" * 32, b"t" * 32),
            ks.connectionSecret(hs, b"3" * 32),
        ]
        self.assertEqual(len(values[0]), 16)
        self.assertEqual([len(v) for v in values[1:]], [32] * 4)
        self.assertEqual(len(set(values)), len(values))
