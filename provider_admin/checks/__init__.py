"""Health checks of the providers' clusters: what to check, when, and what the result means.

The Kubernetes calls themselves live in `provider_admin.kube`; this package decides which
provider is due, claims it in the database, runs the check and turns the result into a
status (with the failure threshold and back-off).
"""
from .jobs import CheckJob, check_now, job_for
from .results import apply_result

__all__ = ["CheckJob", "apply_result", "check_now", "job_for"]
