"""The token format: a fixed prefix that secret scanners can look for, 32 random base62
characters and a 6-character CRC-32 checksum of them, so a scanner can tell a real token
from a string that merely starts the same way, without asking the server."""
import hashlib
import re
import secrets
import zlib

PREFIX = "pvat_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH, CHECKSUM_LENGTH = 32, 6
PATTERN = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}\Z")
HINT_LENGTH = len(PREFIX) + 4


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), CHECKSUM_LENGTH)


def generate() -> str:
    """A new token (shown once, never stored)."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + checksum(random_part)


def well_formed(token: str) -> bool:
    """The shape and checksum hold: anything else is refused without a database lookup."""
    if not PATTERN.match(token):
        return False
    body = token[len(PREFIX):]
    return secrets.compare_digest(checksum(body[:RANDOM_LENGTH]), body[RANDOM_LENGTH:])


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hint(token: str) -> str:
    return token[:HINT_LENGTH]
