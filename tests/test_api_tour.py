"""The README's API tour, run as written with curl and jq against a live site and a cluster,
leaves in the database and the audit log what the same steps on the pages leave (SPEC §10)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from provider_admin.extensions import db
from provider_admin.kube import scheduling
from provider_admin.models import AuditEvent, Organization, Provider, Role
from provider_admin.tokens import service as tokens

from .kube import KubeAPI
from .tests_api import serving

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_SITE, EXAMPLE_CLUSTER = "http://127.0.0.1:5000", "https://east.example.com:6443"
TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "workspaces", "effect": "NoSchedule"}]
COLUMNS = ("namespace", "credentials_kind", "storage_class", "affinity",
           "pod_tolerations", "pod_node_selector", "e2e_encryption", "external_ssh", "access_url",
           "cordoned", "cordon_reason", "status", "status_message", "kube_version", "version")

OWN = {"name", "cluster_address", "ca_certificate"}  # the two providers' own, not the steps'

pytestmark = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")


def tour() -> str:
    text = README.read_text()
    start = text.index("```sh\n", text.index("A tour with curl")) + len("```sh\n")
    return text[start:text.index("```", start)]


def provider(name: str) -> Provider:
    db.session.expire_all()
    return db.session.scalar(db.select(Provider).filter_by(name=name))


def audit_of(found: Provider) -> list[tuple]:
    """What the log says was done to the provider, without who, when, its name and its cluster."""
    events = db.session.scalars(db.select(AuditEvent).filter_by(target_type="provider", target_id=found.id)
                                .order_by(AuditEvent.id))
    return [(e.action, {k: v for k, v in (e.changes or {}).items() if k not in OWN}) for e in events]


def a_cluster_with_fast_ssd(kube):
    kube.put("storage.k8s.io/v1/storageclasses", None, "fast-ssd", {"provisioner": "csi.example.com"})
    return kube


def run_the_tour(app, kube, secret, folder: Path) -> dict:
    conn = a_cluster_with_fast_ssd(kube).connection(namespace="workspaces")
    (folder / "east-ca.pem").write_text(conn.ca_cert)
    with serving(app) as site:
        script = tour().replace(EXAMPLE_SITE, site).replace(EXAMPLE_CLUSTER, conn.server)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "TOKEN": secret, "EAST_TOKEN": conn.token})
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout[done.stdout.index("{"):])


def the_same_on_the_pages(actions, kube):
    """Create, deploy, cordon and edit as a manager does on the pages."""
    conn = a_cluster_with_fast_ssd(kube).connection(namespace="workspaces")
    platform = db.session.scalar(db.select(Organization.id).filter_by(name="Platform"))
    form = {"name": "west", "cluster_address": conn.server, "namespace": "workspaces",
            "ca_certificate": conn.ca_cert, "token": conn.token, "organizations": [platform],
            "pod_tolerations": json.dumps(TOLERATIONS), "affinity": json.dumps(scheduling.DEFAULT_AFFINITY)}
    assert actions.post("/manage/providers/new", form).status_code == 303
    west = provider("west")
    assert actions.post(f"/manage/providers/{west.id}/deploy").status_code == 303
    assert actions.post(f"/manage/providers/{west.id}/cordon", {"reason": "upgrade on Friday"}).status_code == 303
    edit = {**form, "token": "", "storage_class": "fast-ssd", "version": str(provider("west").version)}
    assert actions.post(f"/manage/providers/{west.id}/edit", edit).status_code == 303


def test_the_readme_tour_runs_with_curl_and_matches_the_pages(app, actions, make_org, kube_api_tls, tmp_path):
    make_org("Platform")
    manager = actions.user(Role.MANAGER.value, username="ops")
    _, secret = tokens.create(manager, "tour", 30, read_only=False)
    last = run_the_tour(app, kube_api_tls, secret, tmp_path)
    assert last == {"name": "east", "storage_class": "fast-ssd", "cordoned": True, "version": last["version"]}

    actions.login(Role.MANAGER.value, username="pages")
    with KubeAPI(tls=True) as other:  # a cluster of its own: a namespace serves one provider
        the_same_on_the_pages(actions, other)
    east, west = provider("east"), provider("west")
    assert east.status == "ready" and east.cordon_reason == "upgrade on Friday", east.status_message
    assert {c: getattr(east, c) for c in COLUMNS} == {c: getattr(west, c) for c in COLUMNS}
    assert [o.name for o in east.organizations] == [o.name for o in west.organizations] == ["Platform"]
    assert audit_of(east) == audit_of(west)
    assert [a for a, _ in audit_of(east)] == ["provider.create", "provider.deploy", "provider.cordon",
                                              "provider.update"]
    actors = {e.actor for e in db.session.scalars(db.select(AuditEvent).filter_by(target_id=east.id,
                                                                                  target_type="provider"))}
    assert actors == {manager.email}
