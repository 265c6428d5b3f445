"""Encryption of credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256)."""
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


def _fernet() -> MultiFernet:
    # Several comma-separated keys allow rotation: the first encrypts, all decrypt.
    keys = [k.strip() for k in current_app.config["ENCRYPTION_KEY"].split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str | None) -> bytes | None:
    if not plaintext:
        return None
    return _fernet().encrypt(plaintext.encode())


def decrypt(ciphertext: bytes | None) -> str | None:
    if not ciphertext:
        return None
    try:
        return _fernet().decrypt(ciphertext).decode()
    except InvalidToken:
        raise ValueError("stored credentials cannot be decrypted with the configured encryption key")
