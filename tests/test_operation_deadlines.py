"""Operations on a cluster that a person waits for, or that run in the background, end within
one budget (OPERATION_TIMEOUT) however many requests they make and however the cluster
misbehaves: Deploy on the page and in the API, a provider's deletion with its bootstrap, and
a workspace build. They say what they did before the time ran out and why they stopped.

The clusters are the emulator, slowed, behind a relay that hangs or trickles its Nth request
(tests/bad_clusters.py). The bounds are relative to the budget, with a margin for a loaded
machine; without the budget each of these would take several request timeouts.
"""
import html
import json
import subprocess
import sys
import time
import urllib.request

import pytest
import sqlalchemy as sa

from provider_admin import ROOT, kube
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, BootstrapObject, Provider, ProviderCheck, Role, Workspace
from provider_admin.tokens import service as tokens
from provider_admin.workspaces.builds import spec_for

from . import servers
from .bad_clusters import BadRelay
from .kube import provider_uid
from .test_kube_workspace import Recorder, make_spec
from .test_workspaces import created
from .tests_api import call

TIMEOUT = 2.0  # each request
BUDGET = 3.0  # the whole operation (OPERATION_TIMEOUT)
# CHECK_TIMEOUT of the app: longer than the budget, so that only the budget can end these in time
REQUEST_TIMEOUT = 10.0
LAG = 0.4  # what the slowed emulator adds to every request
MARGIN = 2.0  # a loaded machine's scheduling, never another budget
OUT_OF_TIME = "out of time: {what} may take 3 s with all its requests to the cluster"


@pytest.fixture
def app_config():
    return {"CHECK_TIMEOUT": REQUEST_TIMEOUT, "OPERATION_TIMEOUT": BUDGET}


def timed(action):
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def test_deploy_takes_its_budget_for_all_its_requests_not_a_timeout_for_each(kube_api):
    """Every answer comes well within the request timeout; all seventeen of them do not come
    within the budget."""
    kube_api.slow("get", TIMEOUT * 0.45)
    kube_api.slow("post", TIMEOUT * 0.45)
    objs = kube.bootstrap_manifest(provider_name="p1", namespace="ws", provider_uid=provider_uid("p1"))

    outcomes, elapsed = timed(lambda: kube.deploy(
        kube_api.connection(), objs, provider_uid=provider_uid("p1"), provider_name="p1",
        timeout=TIMEOUT, budget=BUDGET))

    assert BUDGET * 0.9 <= elapsed < BUDGET + MARGIN
    results = [o.result for o in outcomes]
    assert results[0] == kube.CREATED
    stopped = next(o for o in outcomes if o.failed)
    assert str(stopped).endswith(f": could not touch: {OUT_OF_TIME.format(what='Deploy')}, and "
                                 f"{kube_api.url.removeprefix('http://')} had not answered them all by then "
                                 "(no answer, or answers too slow to finish in time). The API server may be "
                                 "overloaded, or the address points to something else.")
    after = results[results.index(stopped.result) + 1:]
    assert after and set(after) == {kube.NOT_TRIED}
    assert len(kube_api.requests) < 17


def test_deploy_on_the_page_against_a_hanging_cluster_says_what_it_applied(app, actions, client,
                                                                          kube_api, kube_provider):
    actions.login(Role.MANAGER.value)
    kube_api.slow("get", LAG)
    kube_api.slow("post", LAG)
    # 1: the marker, 2-3: the Namespace, 4-5: the ServiceAccount, 6: GET the token Secret
    with BadRelay(kube_api, "silent", nth=6) as relay:
        provider = kube_provider(relay, name="east")
        answer, elapsed = timed(lambda: actions.post(f"/manage/providers/{provider.id}/deploy", htmx=True))
        page = html.unescape(client.get(f"/manage/providers/{provider.id}").text)

    assert answer.status_code == 200 and answer.headers["HX-Redirect"].endswith(f"/manage/providers/{provider.id}")
    assert BUDGET * 0.9 <= elapsed - check_time(provider) < BUDGET + MARGIN  # the Deploy; then its check
    assert "Namespace ws: created" in page
    assert "ServiceAccount provider-admin in namespace ws: created" in page
    assert ("Secret provider-admin-token in namespace ws: could not touch: "
            + OUT_OF_TIME.format(what="Deploy")) in page
    assert "Role provider-admin in namespace ws: not tried: Deploy stops at the first object" in page
    assert kube_api.get("v1/serviceaccounts", "ws", "provider-admin") is not None
    assert kube_api.get("v1/secrets", "ws", "provider-admin-token") is None
    rows = db.session.scalars(sa.select(BootstrapObject).filter_by(provider_id=provider.id))
    assert {(b.kind, b.name) for b in rows} == {("Namespace", "ws"), ("ServiceAccount", "provider-admin")}
    audit = db.session.scalar(sa.select(AuditEvent).filter_by(action="provider.deploy"))
    assert "could not touch: out of time" in str(audit.changes)


def test_deploy_in_the_api_against_a_trickling_cluster_answers_with_the_timeout(app, actions,
                                                                               kube_api, kube_provider):
    manager = actions.user(Role.MANAGER.value, username="ops")
    _, secret = tokens.create(manager, "script", 30, read_only=False)
    kube_api.slow("get", LAG)
    # 7: POST the token Secret, whose answer comes a byte at a time, each well within a read
    with BadRelay(kube_api, "slow_body", nth=7, drip=TIMEOUT / 8) as relay:
        provider = kube_provider(relay, name="east")
        answer, elapsed = timed(lambda: call(app.test_client(), "POST", f"/providers/{provider.id}/deploy", secret))

    assert answer.status_code == 200, answer.text
    assert BUDGET * 0.9 <= elapsed - check_time(provider) < BUDGET + MARGIN
    results = {o["kind"]: o["result"] for o in answer.json["objects"]}
    assert answer.json["succeeded"] is False
    assert results["Namespace"] == results["ServiceAccount"] == "created"
    assert results["Secret"].startswith("could not touch: ")
    assert OUT_OF_TIME.format(what="Deploy") in results["Secret"]
    assert results["ConfigMap"].startswith("not tried")
    assert "Secret provider-admin-token in namespace ws: could not touch" in answer.json["summary"]


def test_deploy_under_gunicorn_answers_within_its_budget_and_its_checks_timeout(
        app_context, database_url, tmp_path, actions, kube_api, kube_provider):
    """The production server, with the project's deploy/gunicorn.conf.py: whoever waits in front of it
    (a proxy's read timeout, a sync worker's --timeout) gets the answer within the Deploy's
    budget and its check's timeout; seventeen slowed requests would take longer."""
    manager = actions.user(Role.MANAGER.value, username="ops")
    _, secret = tokens.create(manager, "script", 30, read_only=False)
    kube_api.slow("get", LAG)
    kube_api.slow("post", LAG)
    provider = kube_provider(kube_api, name="east")
    env = servers.environment(database_url, tmp_path / "instance", CHECK_TIMEOUT=TIMEOUT, OPERATION_TIMEOUT=BUDGET)
    config = servers.ROOT / "deploy" / "gunicorn.conf.py"
    with servers.gunicorn(env, tmp_path / "access.log", workers=1, config=config) as url:
        request = urllib.request.Request(f"{url}/api/v1/providers/{provider.id}/deploy", method="POST",
                                         headers={"Authorization": f"Bearer {secret}"})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, found = answer.status, json.load(answer)
        elapsed = time.monotonic() - started

    assert status == 200
    assert elapsed < BUDGET + TIMEOUT + MARGIN
    assert found["succeeded"] is False
    assert OUT_OF_TIME.format(what="Deploy") in found["summary"]
    assert "Namespace ws: created" in found["summary"]


def test_deleting_a_provider_with_its_bootstrap_from_a_hanging_cluster_ends_within_the_budget(
        app, actions, client, kube_api, kube_provider):
    actions.login(Role.MANAGER.value)
    with BadRelay(kube_api, "silent", nth=10 ** 6) as relay:
        provider = kube_provider(relay, name="east")
        assert actions.post(f"/manage/providers/{provider.id}/deploy").status_code == 303
        provider_id = provider.id
        kube_api.slow("get", LAG)
        kube_api.slow("delete", LAG)
        relay.nth = len(relay.requests) + 3  # the marker goes (GET, DELETE); the next GET hangs
        answer, elapsed = timed(lambda: actions.post(f"/manage/providers/{provider_id}/delete",
                                                     {"remove_bootstrap": "y"}))
        page = html.unescape(client.get("/manage/providers/").text)

    assert answer.status_code == 303
    assert BUDGET * 0.9 <= elapsed < BUDGET + MARGIN
    assert db.session.get(Provider, provider_id) is None
    assert "ConfigMap provider-admin-marker in namespace ws: removed" in page
    assert ("ClusterRoleBinding provider-admin-ws: could not remove: "
            + OUT_OF_TIME.format(what="removing the bootstrap")) in page
    assert "Namespace ws: could not remove: out of time" in page
    assert "kubectl delete clusterrolebinding provider-admin-ws" in page
    assert kube_api.get("v1/configmaps", "ws", "provider-admin-marker") is None
    assert kube_api.get("rbac.authorization.k8s.io/v1/roles", "ws", "provider-admin") is not None


def test_a_workspace_build_against_a_trickling_cluster_ends_failed_saying_why(app, actions, kube_api,
                                                                             kube_provider, make_org):
    org = make_org("Acme")
    actions.login("member", organizations=[org])
    kube_api.deploy_marker("east")
    kube_api.slow("post", LAG)
    # 1: the home volume claim, 2: the pod, whose answer trickles
    with BadRelay(kube_api, "slow_body", nth=2, drip=TIMEOUT / 8) as relay:
        provider = kube_provider(relay, name="east", organizations=[org], status="ready")
        started = time.monotonic()
        workspace_id = created(actions, provider, org).id
        workspace = wait_for_end(workspace_id, REQUEST_TIMEOUT * 2)
        elapsed = time.monotonic() - started

    assert workspace.status == "failed"
    assert elapsed < BUDGET * 2 + MARGIN  # creating, then removing what it created
    pod = kube.object_names(spec_for(workspace))["pod"]
    assert workspace.status_message.startswith(
        f"Creating Pod {pod} failed: " + OUT_OF_TIME.format(what="creating the workspace's objects"))
    assert "The objects this build created were removed again." in workspace.status_message
    log = [line.line for line in workspace.log]
    assert any(line.startswith(f"Creating Pod {pod} failed: out of time") for line in log), log
    assert any(line.startswith("Removed PersistentVolumeClaim") for line in log), log
    assert kube_api.get("v1/persistentvolumeclaims", "ws", kube.object_names(spec_for(workspace))["pvc"]) is None


def test_a_workspace_deletion_against_a_hanging_cluster_ends_failed_saying_what_is_left(
        app, actions, kube_api, kube_provider, make_org):
    org = make_org("Acme")
    actions.login("member", organizations=[org])
    kube_api.deploy_marker("east")
    with BadRelay(kube_api, "silent", nth=10 ** 6) as relay:
        provider = kube_provider(relay, name="east", organizations=[org], status="ready")
        workspace = wait_for_end(created(actions, provider, org).id, REQUEST_TIMEOUT)
        assert workspace.status == "running", workspace.status_message
        names = kube.object_names(spec_for(workspace))
        kube_api.slow("get", LAG)
        # the Service (read: absent), the pod (read, then its DELETE hangs)
        relay.nth = len(relay.requests) + 3
        started = time.monotonic()
        assert actions.post(f"/workspaces/{workspace.id}/delete").status_code == 303
        workspace = wait_for_end(workspace.id, REQUEST_TIMEOUT * 2, busy="deleting")
        elapsed = time.monotonic() - started

    assert workspace.status == "failed"
    assert BUDGET * 0.9 <= elapsed < BUDGET + MARGIN
    assert workspace.status_message == (f"Could not delete everything; still in namespace ws: Pod {names['pod']}, "
                                        f"PersistentVolumeClaim {names['pvc']}.")
    log = [line.line for line in workspace.log]
    assert f"Could not delete Pod {names['pod']}: " + OUT_OF_TIME.format(
        what="deleting the workspace's objects") in "\n".join(log), log
    assert kube_api.get("v1/persistentvolumeclaims", "ws", names["pvc"]) is not None


def test_a_rebuild_whose_build_step_runs_out_of_time_keeps_the_home_volume(kube_api):
    spec = make_spec()
    assert kube.build_workspace(kube_api.connection(), spec, Recorder()).ok
    names, log = kube.object_names(spec), Recorder()
    kube_api.slow("post", LAG)
    with BadRelay(kube_api, "silent", nth="POST /api/v1/namespaces/ws/pods") as relay:
        result, elapsed = timed(lambda: kube.rebuild_workspace(relay.connection(), spec, log, timeout=REQUEST_TIMEOUT,
                                                              budget=BUDGET, wait=BUDGET))

    assert not result.ok
    assert elapsed < BUDGET * 2 + MARGIN  # deleting the pod and creating the objects: one budget each
    assert result.message.startswith(f"Creating Pod {names['pod']} failed: "
                                     + OUT_OF_TIME.format(what="creating the workspace's objects"))
    assert f"Deleted Pod {names['pod']}" in log
    assert any(line.startswith(f"Creating Pod {names['pod']} failed: out of time") for line in log), log
    assert kube_api.get("v1/persistentvolumeclaims", "ws", names["pvc"]) is not None  # kept, as ever


def test_the_edit_forms_suggestions_take_one_timeout_for_both_lists(app, actions, kube_api, kube_provider):
    """Each list comes within the page's 3 s; both together do not."""
    actions.login(Role.MANAGER.value)
    kube_api.put("v1/serviceaccounts", "ws", "workspace-sa", {"kind": "ServiceAccount"})
    kube_api.slow("get /apis/storage.k8s.io/v1/storageclasses", 2.0)
    kube_api.slow("get /api/v1/namespaces/ws/serviceaccounts", 2.0)
    provider = kube_provider(kube_api)

    names, elapsed = timed(lambda: actions.htmx_get(f"/manage/providers/{provider.id}/cluster-names"))

    assert names.status_code == 200
    assert elapsed < 3.0 + MARGIN
    assert "No service account suggestions from the cluster: " in names.text
    assert "did not answer within 3 s" in names.text and "workspace-sa" not in names.text


def check_time(provider: Provider) -> float:
    """Seconds the check after a Deploy took (it has a timeout of its own)."""
    check = db.session.scalar(sa.select(ProviderCheck).filter_by(provider_id=provider.id, trigger="deploy"))
    return check.duration_ms / 1000


def wait_for_end(workspace_id: int, limit: float, busy: str = "building") -> Workspace:
    until = time.monotonic() + limit
    while True:
        db.session.expire_all()
        workspace = db.session.get(Workspace, workspace_id)
        if workspace.status != busy:
            return workspace
        assert time.monotonic() < until, "the build did not end"
        time.sleep(0.05)


# A host name whose DNS servers never answer -----------------------------------------------

SILENT_DNS = r'''
import json, socket, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open(sys.argv[1], "w") as f:
    f.write("nameserver 127.0.0.1\n")
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/resolv.conf"], check=True)
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.1", 53))  # reads the questions, answers none

from provider_admin import kube
conn = kube.Connection(server="https://cluster.example.test:6443", namespace="ws", token="t")
started = time.monotonic()
result = kube.check(conn, provider_name="p1", timeout=float(sys.argv[2]))
checked = time.monotonic() - started
outcomes = kube.deploy(conn, kube.bootstrap_manifest(provider_name="p1", namespace="ws"),
                       provider_uid="u", provider_name="p1", timeout=float(sys.argv[2]) * 10,
                       budget=float(sys.argv[3]))
print(json.dumps({"check": [checked, result.category, result.message],
                  "deploy": [time.monotonic() - started - checked, str(outcomes[0])]}))
'''


def test_a_host_name_whose_dns_does_not_answer_costs_the_timeout_not_the_resolvers(tmp_path):
    """getaddrinfo has no timeout (glibc waits 5 s per try, twice); the lookup is bounded by
    the check's timeout and the operation's budget. In namespaces of its own (user, mount,
    network), the process's DNS server is a socket on 127.0.0.1:53 that never answers."""
    if subprocess.run(["unshare", "-rmn", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare -rmn (unprivileged user, mount and network namespaces)")
    run = subprocess.run(["unshare", "-rmn", sys.executable, "-c", SILENT_DNS, str(tmp_path / "resolv.conf"),
                          str(TIMEOUT), str(BUDGET)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])

    elapsed, category, message = found["check"]
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + MARGIN
    assert category == "unreachable"
    assert message == (f"Looking up the host name cluster.example.test took longer than {TIMEOUT:g} s (the "
                       "DNS servers did not answer in time). Check the cluster address and this machine's "
                       "DNS servers.")
    elapsed, first = found["deploy"]
    assert BUDGET * 0.9 <= elapsed < BUDGET + MARGIN
    assert first.startswith("Namespace ws: could not touch: " + OUT_OF_TIME.format(what="Deploy"))
