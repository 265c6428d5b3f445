"""`providers export` and `providers apply` (SPEC §10): a file round-trips with no changes, a
wrong file fails with every field error and changes nothing, credentials come from the
environment or files the YAML names, and the pages' guards hold."""
import json

import pytest
import yaml

from provider_admin import crypto
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Provider, Role, Workspace

TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "workspaces", "effect": "NoSchedule"}]
SELECTOR = {"pool": "workspaces"}


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def site(make_org, make_provider):
    acme, globex = make_org("Acme"), make_org("Globex")
    east = make_provider("east", organizations=[acme, globex], cluster_address="https://east.example.com:6443",
                         namespace="ws", credentials_encrypted=crypto.encrypt(json.dumps({"token": "east-secret"})),
                         credentials_kind="token", pod_tolerations=TOLERATIONS, pod_node_selector=SELECTOR,
                         storage_class="fast", e2e_encryption=True)
    west = make_provider("west", organizations=[acme], cluster_address="https://west.example.com",
                         namespace="ws", cordoned=True, cordon_reason="upgrade on Friday",
                         credentials_encrypted=crypto.encrypt(json.dumps({"token": "west-secret"})),
                         credentials_kind="token")
    return acme, globex, east, west


def export(runner) -> str:
    result = runner.invoke(args=["providers", "export"])
    assert result.exit_code == 0, result.output
    return result.output


def apply(runner, tmp_path, document, *options, env=None):
    path = tmp_path / "providers.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return runner.invoke(args=["providers", "apply", "-f", str(path), *options], env=env)


def snapshot() -> dict:
    db.session.expire_all()
    providers = db.session.scalars(db.select(Provider).order_by(Provider.name)).all()
    return {p.name: (p.version, p.display_version, p.namespace, p.cluster_address, p.cordoned,
                     p.credentials_encrypted, [o.name for o in p.organizations]) for p in providers}


def audit_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(AuditEvent))


def test_export_writes_every_setting_and_no_secret(runner, site):
    text = export(runner)
    assert "east-secret" not in text and "west-secret" not in text and "credentials" not in text
    document = yaml.safe_load(text)
    assert document["apiVersion"] == "provider-admin/v1" and document["kind"] == "ProviderList"
    east, west = document["providers"]
    assert east["name"] == "east" and east["namespace"] == "ws" and east["storage_class"] == "fast"
    assert east["pod_tolerations"] == TOLERATIONS and east["pod_node_selector"] == SELECTOR
    assert east["organizations"] == ["Acme", "Globex"] and east["e2e_encryption"] is True
    assert "affinity" not in east  # the default
    assert west["cordoned"] is True and west["cordon_reason"] == "upgrade on Friday"


def test_applying_the_export_changes_nothing(runner, site, tmp_path):
    before, events = snapshot(), audit_count()
    result = apply(runner, tmp_path, export(runner))
    assert result.exit_code == 0, result.output
    assert "= unchanged provider east" in result.output and "Nothing to change." in result.output
    assert snapshot() == before and audit_count() == events


def test_a_new_provider_takes_its_token_from_the_environment_and_a_second_apply_changes_nothing(
        runner, site, tmp_path):
    document = yaml.safe_load(export(runner))
    document["providers"].append({"name": "north", "cluster_address": "https://north.example.com",
                                  "namespace": "workspaces", "organizations": ["globex"],
                                  "credentials": {"token_env": "NORTH_TOKEN"}, "pod_node_selector": SELECTOR})
    result = apply(runner, tmp_path, document, env={"NORTH_TOKEN": "north-secret"})
    assert result.exit_code == 0, result.output
    assert "+ create provider north" in result.output and "1 change(s) made." in result.output
    assert "north-secret" not in result.output
    north = db.session.scalar(db.select(Provider).filter_by(name="north"))
    assert json.loads(crypto.decrypt(north.credentials_encrypted)) == {"token": "north-secret"}
    assert [o.name for o in north.organizations] == ["Globex"] and north.status == "pending"
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="provider.create"))
    assert event.actor == "(command line)" and event.changes["credentials"] == "(redacted)"
    before, events = snapshot(), audit_count()
    again = apply(runner, tmp_path, document, env={"NORTH_TOKEN": "north-secret"})
    assert again.exit_code == 0 and "Nothing to change." in again.output
    assert snapshot() == before and audit_count() == events


def test_a_token_file_is_read_next_to_the_yaml(runner, site, tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "east.token").write_text("rotated-secret\n")
    document = yaml.safe_load(export(runner))
    document["providers"][0]["credentials"] = {"token_file": "secrets/east.token"}
    result = apply(runner, tmp_path, document)
    assert result.exit_code == 0, result.output
    assert "~ update provider east" in result.output and "credentials: (changed)" in result.output
    east = db.session.scalar(db.select(Provider).filter_by(name="east"))
    assert json.loads(crypto.decrypt(east.credentials_encrypted)) == {"token": "rotated-secret"}


def test_the_diff_is_readable_and_dry_run_changes_nothing(runner, site, tmp_path):
    document = yaml.safe_load(export(runner))
    document["providers"][0]["namespace"] = "ws-2"
    document["providers"][0]["pod_node_selector"] = {"pool": "gpu"}
    document["providers"][1]["cordoned"] = False
    before = snapshot()
    result = apply(runner, tmp_path, document, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "~ update provider east" in result.output and "    namespace: ws → ws-2" in result.output
    assert '    pod_node_selector: {"pool": "workspaces"} → {"pool": "gpu"}' in result.output
    assert "~ update provider west" in result.output and "    cordoned: no" in result.output
    assert "2 change(s) not made (dry run)." in result.output
    assert snapshot() == before
    result = apply(runner, tmp_path, document)
    assert result.exit_code == 0 and "2 change(s) made." in result.output
    east, west = db.session.scalars(db.select(Provider).order_by(Provider.name)).all()
    assert east.namespace == "ws-2" and east.pod_node_selector == {"pool": "gpu"} and not west.cordoned
    actions = [e.action for e in db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["provider.update", "provider.uncordon"]


def test_a_wrong_file_lists_every_field_error_and_changes_nothing(runner, site, tmp_path):
    document = yaml.safe_load(export(runner))
    document["providers"][0]["pod_tolerations"] = [{"key": "a", "operator": "Equal", "effect": "NoSchedul"}]
    document["providers"][1]["namespace"] = "Not A Label"
    document["providers"].append({"name": "north", "namespace": "ws", "cluster_address": "https://n.example.com",
                                  "organizations": ["Nowhere"]})
    before, events = snapshot(), audit_count()
    result = apply(runner, tmp_path, document)
    assert result.exit_code == 1
    errors = result.output
    assert "providers[0] (east): pod_tolerations:" in errors and "NoSchedul" in errors
    assert "providers[1] (west): namespace:" in errors
    assert "providers[2] (north): organizations: no organization named Nowhere" in errors
    assert snapshot() == before and audit_count() == events


@pytest.mark.parametrize("entry, message", [
    ({"name": "east", "token": "inline"}, "unknown field(s) token"),
    ({"name": "east", "credentials": {"token": "inline"}}, "a file never holds the secret itself"),
    ({"name": "east", "credentials": {"token_env": "UNSET_TOKEN"}}, "the environment variable UNSET_TOKEN is not set"),
    ({"name": "east", "credentials": {"token_file": "missing.token"}}, "cannot read missing.token"),
    ({"name": "east", "e2e_encryption": "yes"}, "e2e_encryption: true or false"),
])
def test_credentials_and_fields_are_named_never_inline(runner, site, tmp_path, entry, message):
    document = yaml.safe_load(export(runner))
    document["providers"][0].update(entry)
    before = snapshot()
    result = apply(runner, tmp_path, document)
    assert result.exit_code == 1 and message in result.output
    assert snapshot() == before


def test_a_moved_address_needs_its_credentials_named(runner, site, tmp_path):
    document = yaml.safe_load(export(runner))
    document["providers"][0]["cluster_address"] = "https://elsewhere.example.com"
    result = apply(runner, tmp_path, document)
    assert result.exit_code == 1
    assert "providers[0] (east): credentials: The cluster address changed" in result.output
    document["providers"][0]["credentials"] = {"token_env": "EAST_TOKEN"}
    result = apply(runner, tmp_path, document, env={"EAST_TOKEN": "new-east"})
    assert result.exit_code == 0, result.output


def test_the_pages_guards_hold(runner, site, tmp_path, actions):
    acme, globex, east, west = site
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[globex])
    db.session.add(Workspace(name="box", owner=member, organization=globex, provider=east, image="busybox",
                             cpu="1", memory="1Gi", disk="1Gi", status="running", namespace="ws"))
    db.session.commit()
    document = yaml.safe_load(export(runner))
    document["providers"][0]["organizations"] = ["Acme"]
    document["providers"][0]["namespace"] = "elsewhere"
    result = apply(runner, tmp_path, document)
    assert result.exit_code == 1
    assert "Globex still has 1 workspace on this provider" in result.output
    assert "Namespace cannot change while 1 workspace runs here: dev/box" in result.output


def test_prune_deletes_what_the_file_leaves_out_unless_workspaces_run_there(runner, site, tmp_path, actions):
    acme, globex, east, west = site
    document = yaml.safe_load(export(runner))
    document["providers"] = [p for p in document["providers"] if p["name"] == "east"]
    assert "Nothing to change." in apply(runner, tmp_path, document).output  # without --prune, west stays
    member = actions.user(Role.MEMBER.value, username="dev", organizations=[acme])
    db.session.add(Workspace(name="box", owner=member, organization=acme, provider=west, image="busybox",
                             cpu="1", memory="1Gi", disk="1Gi", status="running", namespace="ws"))
    db.session.commit()
    before = snapshot()
    result = apply(runner, tmp_path, document, "--prune")
    assert result.exit_code == 1 and "west: not in the file, but 1 workspace(s) run there" in result.output
    assert snapshot() == before
    db.session.execute(db.delete(Workspace))
    db.session.commit()
    result = apply(runner, tmp_path, document, "--prune")
    assert result.exit_code == 0, result.output
    assert "- delete provider west (its record; objects in the cluster stay)" in result.output
    assert list(snapshot()) == ["east"]
    assert db.session.scalar(db.select(AuditEvent).filter_by(action="provider.delete")).actor == "(command line)"


def test_a_file_that_is_not_a_provider_list_is_refused(runner, site, tmp_path):
    for text in ("providers: [", "kind: Something\n", yaml.safe_dump({"apiVersion": "provider-admin/v1",
                                                                     "kind": "ProviderList", "providers": [
                                                                         {"name": "a"}, {"name": "a"}]})):
        result = apply(runner, tmp_path, text)
        assert result.exit_code == 1, text
    assert "the name is used twice in the file" in result.output
