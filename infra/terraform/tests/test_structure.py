"""The shape asked of the infrastructure, read from the Terraform files: each service its own fleet,
balancer and database from one map; databases private and reachable only from their own
fleet; the balancer the only public entry; health checks on /readyz; pinned providers; remote
state; no secret in the code."""
import re
from pathlib import Path

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parents[1]
FOLDERS = ["modules/network", "modules/service_fleet", "modules/load_balancer", "modules/database", "modules/kms_key",
           "envs/production"]

SERVICE_MODULES = ("load_balancer", "service_fleet", "database")


def test_every_tf_file_parses():
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 20
    for tf in files:
        with tf.open() as handle:
            assert hcl2.load(handle), tf


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_has_the_four_files(folder):
    names = {p.name for p in (TERRAFORM / folder).glob("*.tf")}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= names


def test_providers_are_pinned(modules, production):
    for config in [*modules.values(), production]:
        (terraform,) = config.blocks[("terraform",)]
        assert terraform["required_version"].startswith(">= 1.11")
        (providers,) = terraform["required_providers"]
        assert providers, config.path
        for name, spec in providers.items():
            assert spec["source"].startswith("hashicorp/"), (config.path, name)
            assert re.fullmatch(r"~> \d+\.\d+", spec["version"]), (config.path, name, spec["version"])


def test_remote_state_is_s3_with_locking_and_overridable(production):
    (terraform,) = production.blocks[("terraform",)]
    (backend,) = terraform["backend"]
    s3 = backend["s3"]
    # Partial configuration: where the state lives is given at init, not in the code.
    assert s3["encrypt"] is True and s3["key"]
    assert "bucket" not in s3 and "dynamodb_table" not in s3
    example = (TERRAFORM / "envs/production/backend.hcl.example").read_text()
    assert re.search(r"^dynamodb_table\s*=", example, re.M) and re.search(r"^bucket\s*=", example, re.M)


def test_one_map_of_services_makes_each_service_its_own_fleet_balancer_and_database(production):
    calls = production.named("module")
    for name in SERVICE_MODULES:
        assert calls[name]["source"] == f"../../modules/{name}"
        assert calls[name]["for_each"] == "${var.services}", name
    # Every cross-reference between the per-service modules stays within the same service.
    for name in SERVICE_MODULES:
        text = repr(calls[name])
        for other in SERVICE_MODULES:
            for index in re.findall(rf"module\.{other}\[([^\]]+)\]", text):
                assert index == "each.key", (name, other, index)
    fleet = calls["service_fleet"]
    assert fleet["balancer_security_group_id"] == "${module.load_balancer[each.key].security_group_id}"
    assert fleet["target_group_arn"] == "${module.load_balancer[each.key].target_group_arn}"
    assert fleet["database"] == "${module.database[each.key]}"
    services = production.named("variable")["services"]
    assert "map(object(" in services["type"]
    for field in ("instance_type", "min_instances", "max_instances", "db_instance_class", "read_replicas"):
        assert field in services["type"], field


def test_outputs_give_the_base_urls_and_database_endpoints(production):
    outputs = production.named("output")
    assert "module.load_balancer" in outputs["base_urls"]["value"]
    assert "balancer.base_url" in outputs["base_urls"]["value"]
    assert "module.database" in outputs["database_endpoints"]["value"]
    assert "replica_addresses" in outputs["database_endpoints"]["value"]


def test_databases_are_private_encrypted_and_backed_up(modules):
    database = modules["database"]
    instances = database.resources("aws_db_instance")
    assert set(instances) == {"primary", "replica"}
    shared = database.named("locals")["instance"]
    assert shared["storage_encrypted"] is True
    for name, instance in instances.items():
        assert instance["publicly_accessible"] is False, name
        assert instance["vpc_security_group_ids"] == "${local.instance.vpc_security_group_ids}", name
    assert shared["vpc_security_group_ids"] == ["${aws_security_group.database.id}"]
    primary = instances["primary"]
    assert primary["db_subnet_group_name"] == "${aws_db_subnet_group.this.name}"
    assert database.resource("aws_db_subnet_group", "this")["subnet_ids"] == "${var.private_subnet_ids}"
    assert primary["backup_retention_period"] == "${var.backup_retention_days}"
    assert database.named("variable")["backup_retention_days"]["default"] >= 7
    assert primary["manage_master_user_password"] is True  # the password lives in Secrets Manager
    assert instances["replica"]["replicate_source_db"] == "${aws_db_instance.primary.identifier}"
    assert instances["replica"]["count"] == "${var.read_replicas}"


def test_database_is_reachable_only_from_its_own_fleet(modules, production):
    database = modules["database"]
    ingress = database.resources("aws_vpc_security_group_ingress_rule")
    assert list(ingress) == ["from_clients"]
    rule = ingress["from_clients"]
    assert rule["security_group_id"] == "${aws_security_group.database.id}"
    assert rule["referenced_security_group_id"] == "${aws_security_group.client.id}"
    assert rule["from_port"] == rule["to_port"] == 5432
    assert not any(key.startswith("cidr") or key == "prefix_list_id" for key in rule)
    # The client group goes to this service's fleet and nowhere else: the fleet gets its own
    # database's outputs, and nothing else in the environment names the group.
    assert "client_security_group_id" not in production.text()
    assert production.named("module")["service_fleet"]["database"] == "${module.database[each.key]}"
    assert "client_security_group_id" in modules["service_fleet"].named("variable")["database"]["type"]
    for template in modules["service_fleet"].resources("aws_launch_template").values():
        assert "${var.database.client_security_group_id}" in template["vpc_security_group_ids"]


def test_the_balancer_is_the_only_public_entry(modules, production):
    balancer = modules["load_balancer"]
    alb = balancer.resource("aws_lb", "this")
    assert alb["internal"] is False and alb["subnets"] == "${var.public_subnet_ids}"
    assert alb["drop_invalid_header_fields"] is True
    assert production.named("module")["load_balancer"]["public_subnet_ids"] == "${module.network.public_subnet_ids}"
    # Only the balancer module opens anything to an address range; everywhere else ingress
    # names a security group.
    for name, config in modules.items():
        for rule_name, rule in config.resources("aws_vpc_security_group_ingress_rule").items():
            if name == "load_balancer":
                assert rule["cidr_ipv4"] == "${each.value[0]}" and "var.ingress_cidrs" in rule["for_each"]
            else:
                assert "referenced_security_group_id" in rule and "cidr_ipv4" not in rule, (name, rule_name)
        assert not config.resources("aws_security_group_rule"), name
        for group in config.resources("aws_security_group").values():
            assert "ingress" not in group  # rules are separate resources, checked above
    fleet = modules["service_fleet"]
    (from_balancer,) = fleet.resources("aws_vpc_security_group_ingress_rule").values()
    assert from_balancer["referenced_security_group_id"] == "${var.balancer_security_group_id}"
    assert fleet.resource("aws_autoscaling_group", "this")["vpc_zone_identifier"] == "${var.private_subnet_ids}"
    assert production.named("module")["service_fleet"]["private_subnet_ids"] == "${module.network.private_subnet_ids}"
    for template in fleet.resources("aws_launch_template").values():
        assert "network_interfaces" not in template  # no public address on an instance
    for subnet in modules["network"].resources("aws_subnet").values():
        assert subnet.get("map_public_ip_on_launch", False) is False
    # /metrics stays inside the VPC.
    rule = balancer.resource("aws_lb_listener_rule", "private_routes")
    assert rule["condition"][0]["path_pattern"][0]["values"] == "${var.private_paths}"
    assert "/metrics" in balancer.named("variable")["private_paths"]["default"]
    assert rule["action"][0]["fixed_response"][0]["status_code"] == "404"
    # HTTPS only: port 80 redirects.
    listeners = balancer.resources("aws_lb_listener")
    assert listeners["https"]["protocol"] == "HTTPS" and listeners["https"]["port"] == 443
    (redirect,) = listeners["http_redirect"]["default_action"]
    assert redirect["type"] == "redirect" and redirect["redirect"][0]["protocol"] == "HTTPS"


def test_fleet_health_checks_scaling_and_rollout(modules):
    group = modules["service_fleet"].resource("aws_autoscaling_group", "this")
    assert group["health_check_type"] == "ELB"
    assert group["target_group_arns"] == ["${var.target_group_arn}"]
    (refresh,) = group["instance_refresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"][0]["min_healthy_percentage"] == 100  # no capacity lost during a rollout
    policy = modules["service_fleet"].resource("aws_autoscaling_policy", "cpu")
    assert policy["policy_type"] == "TargetTrackingScaling"
    (health,) = modules["load_balancer"].resource("aws_lb_target_group", "instances")["health_check"]
    assert health["path"] == "/readyz" and health["matcher"] == "200"
    template = modules["service_fleet"].resource("aws_launch_template", "task")
    assert template["metadata_options"][0]["http_tokens"] == "required"
    assert "boot.sh.tftpl" in template["user_data"]


def test_no_secret_in_the_code():
    suspicious = re.compile(
        r"""(?ix)
        \b(password|secret_string|master_password)\s*=\s*"   # a literal password attribute
        | AKIA[0-9A-Z]{16}                                   # an AWS access key id
        | -----BEGIN\ [A-Z ]*PRIVATE\ KEY-----
        """)
    files = [p for p in TERRAFORM.rglob("*") if p.is_file() and p.suffix in (".tf", ".tftpl", ".example", ".hcl", ".sql")]
    assert files
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not suspicious.search(line), f"{path}:{number}: {line.strip()}"


def test_runtime_password_is_generated_and_never_in_state(modules):
    database = modules["database"]
    assert ("ephemeral", "random_password", "runtime") in database.blocks
    version = database.resource("aws_secretsmanager_secret_version", "runtime")
    assert "secret_string" not in version  # write-only: Terraform keeps no copy
    assert "ephemeral.random_password.runtime.result" in version["secret_string_wo"]
    # Each task's instance role reads only the secrets it needs: a service instance never the owner's.
    tasks = modules["service_fleet"].named("locals")["tasks"]
    assert tasks["serve"]["secrets"] == ["${var.database.runtime_secret_arn}"]
    assert "${var.database.owner_secret_arn}" in tasks["load"]["secrets"]
    assert tasks["rotate"]["buckets"] == [] and tasks["serve"]["buckets"] == []  # only the load task reads the data
    assert tasks["serve"]["writes"] == tasks["rotate"]["writes"] == []  # only the load task writes: its rejects
    assert tasks["load"]["writes"] == ["arn:aws:s3:::${var.data_location.bucket}/rejects/${var.service}/*"]


# What `terraform validate` would catch first, checked without the provider: every name used is
# declared where it is used.
REFERENCE = re.compile(r"(?<![\w.])(data\.)?(aws_[a-z0-9_]+|random_[a-z0-9_]+)\.([a-z0-9_]+)\b")


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_reference_is_declared(folder):
    from_folder = TERRAFORM / folder
    text = "\n".join(p.read_text() for p in sorted(from_folder.glob("*.tf")))
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments may name things
    declared_variables = set(re.findall(r'^variable "(\w+)"', text, re.M))
    assert set(re.findall(r"\bvar\.(\w+)", code)) <= declared_variables
    declared_locals = set(re.findall(r"^  (\w+)\s+=", "\n".join(re.findall(r"^locals \{\n(.*?)^\}", text, re.M | re.S)), re.M))
    assert set(re.findall(r"\blocal\.(\w+)", code)) <= declared_locals
    resources = set(re.findall(r'^resource "(\w+)" "(\w+)"', text, re.M))
    data = set(re.findall(r'^data "(\w+)" "(\w+)"', text, re.M))
    for is_data, kind, name in REFERENCE.findall(code):
        assert (kind, name) in (data if is_data else resources), f"{folder}: {is_data}{kind}.{name}"
    for kind, name in re.findall(r"\bephemeral\.(\w+)\.(\w+)", code):
        assert f'ephemeral "{kind}" "{name}"' in text


@pytest.mark.parametrize("folder", FOLDERS)
def test_module_calls_match_the_modules(folder):
    """Each module call passes only variables the module declares and every one it requires;
    each module output used exists."""
    from_folder = TERRAFORM / folder
    text = "\n".join(p.read_text() for p in sorted(from_folder.glob("*.tf")))
    calls = {}
    for tf in sorted(from_folder.glob("*.tf")):
        with tf.open() as handle:
            for entry in hcl2.load(handle).get("module", []):
                for name, body in entry.items():
                    calls[name.strip('"')] = body
    for name, body in calls.items():
        module = (from_folder / body["source"].strip('"')).resolve()
        module_text = "\n".join(p.read_text() for p in sorted(module.glob("*.tf")))
        variables = dict(re.findall(r'^variable "(\w+)" \{\n(.*?)^\}', module_text, re.M | re.S))
        passed = {k for k in body if not k.startswith("__")} - {"source", "for_each", "count", "depends_on", "providers"}
        assert passed <= set(variables), (name, passed - set(variables))
        required = {v for v, spec in variables.items() if not re.search(r"^\s+default\s+=", spec, re.M)}
        assert required <= passed, (name, required - passed)
        outputs = set(re.findall(r'^output "(\w+)"', module_text, re.M))
        used = set(re.findall(rf"\bmodule\.{name}(?:\[[^\]]+\])?\.(\w+)", text))
        assert used <= outputs, (name, used - outputs)
