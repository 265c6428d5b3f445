"""Field validators shared by several forms (Kubernetes names, URLs, PEM)."""
from urllib.parse import urlsplit

from wtforms.validators import ValidationError

from .kube.names import is_dns_label, is_dns_subdomain


def _kubernetes_name(is_valid, message: str):
    def check(form, field) -> None:
        value = (field.data or "").strip()
        if value and not is_valid(value):
            raise ValidationError(message)

    return check


dns_label = _kubernetes_name(is_dns_label, "Must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', "
                                           "starting and ending with a letter or digit.")
dns_subdomain = _kubernetes_name(is_dns_subdomain, "Must be a valid Kubernetes name: lowercase letters, digits, '-' "
                                                   "and '.', starting and ending with a letter or digit, at most 253 "
                                                   "characters.")


def absolute_url(*schemes: str):
    def check(form, field) -> None:
        value = (field.data or "").strip()
        if not value:
            return
        try:
            parts = urlsplit(value)
            parts.hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise ValidationError("Not a valid URL: check the host (an IPv6 address goes in [brackets]).")
        if parts.scheme not in schemes or not parts.hostname:
            raise ValidationError(
                f"Must be an absolute {' or '.join(schemes)} URL, e.g. {schemes[-1]}://example.com"
            )
        try:
            parts.port
        except ValueError:
            raise ValidationError("The port in this URL is not a number from 0 to 65535.")

    return check


def cluster_address(form, field) -> None:
    """The address credentials are sent to: the rule of `kube.check_address`, normalized."""
    from flask import current_app

    from .kube import AddressError, check_address

    if not (field.data or "").strip():
        return
    try:
        field.data = check_address(
            field.data, allow_link_local=current_app.config["ALLOW_LINK_LOCAL_CLUSTERS"])
    except AddressError as error:
        raise ValidationError(str(error))


def pem_certificates(form, field) -> None:
    from cryptography import x509

    value = (field.data or "").strip()
    if not value:
        return
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise ValidationError(
            "Not a PEM certificate: paste the text from -----BEGIN CERTIFICATE----- "
            "to -----END CERTIFICATE-----."
        )
