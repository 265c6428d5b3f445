"""File downloads: a Content-Disposition that holds whatever a name holds (RFC 6266)."""
import re
import unicodedata
from urllib.parse import quote

# Line breaks, control and format characters (right-to-left marks and overrides among them,
# which can make "evil.exe.yaml" look like "evil.yaml.exe") and path separators never reach
# a file name; every other character survives in filename*.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def attachment(stem: str, extension: str) -> str:
    """The Content-Disposition of a download named `stem` + `extension` (e.g. ".yaml"): an
    ASCII `filename` of safe characters only, for old clients, and the name itself as
    `filename*`, percent-encoded UTF-8."""
    name = "".join("-" if c in "/\\" or unicodedata.category(c) in _UNSAFE_CATEGORIES else c
                   for c in unicodedata.normalize("NFC", stem)).strip(" .-")[:100] or "download"
    fallback = _ASCII_UNSAFE.sub("-", unicodedata.normalize("NFKD", name).encode("ascii", "ignore")
                                 .decode()).strip(".-") or "download"
    return (f'attachment; filename="{fallback}{extension}"; '
            f"filename*=UTF-8''{quote(name + extension, safe='')}")
