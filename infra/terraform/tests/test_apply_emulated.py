"""`terraform init`, `validate`, `plan`, `apply`, `output` and `destroy` of envs/production against
an AWS emulator (moto's server, from the Terraform tools' venv), with the provider taken from a
local filesystem mirror only (no registry). What the emulator cannot model is listed in the
README (Checks).

The production files are copied to a scratch folder, and only test override files are added
there: a local backend, and the provider pointed at the emulator with fake credentials.
Settings: ATELIER_TF_PLUGIN_MIRROR (default /opt/tf-plugins), the terraform on PATH."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

TERRAFORM = Path(__file__).resolve().parents[1]
INFRA_VENV = Path(os.environ.get("ATELIER_INFRA_VENV", TERRAFORM.parents[1] / ".venv-infra"))
MIRROR = Path(os.environ.get("ATELIER_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
REGION = "us-east-1"
# Every service envs/production calls (an endpoint left out would reach the real AWS and fail
# for want of credentials).
ENDPOINTS = ("acm", "autoscaling", "cloudwatch", "ec2", "elbv2", "iam", "kms", "logs", "rds", "s3",
             "secretsmanager", "sns", "sts", "wafv2")
SERVICES = ("products", "qa", "reviews")


def requirements():
    """One line saying what is missing, or None."""
    if shutil.which("terraform") is None:
        return "terraform is not installed: the emulated apply runs where it is"
    if not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        return f"no provider mirror at {MIRROR} (ATELIER_TF_PLUGIN_MIRROR): the emulated apply needs hashicorp/aws there"
    return None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    missing = requirements()
    if missing:
        pytest.skip(missing)
    server = INFRA_VENV / "bin" / "moto_server"
    if not server.exists():
        pytest.fail(f"{server} is missing: `make infra-tools` installs moto[server] into {INFRA_VENV}")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")  # AmazonSSMManagedInstanceCore etc. exist
    with open(log, "w") as out:
        process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def certificates(url):
    """ACM certificates in the emulator (the balancers' listeners need existing ones)."""
    script = (
        "import boto3, json, sys\n"
        f"acm = boto3.client('acm', region_name='{REGION}', endpoint_url='{url}', "
        "aws_access_key_id='emulator', aws_secret_access_key='emulator')\n"
        "print(json.dumps({s: acm.request_certificate(DomainName=f'{s}.example.com')['CertificateArn'] "
        f"for s in {SERVICES!r}}}))\n")
    done = subprocess.run([str(INFRA_VENV / "bin" / "python"), "-c", script], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def variables(arns, services, replicas):
    return {
        "region": REGION,
        "zones": [f"{REGION}a", f"{REGION}b"],
        "release": {"version": "v0.0.0-emulated", "bucket": "atelier-releases", "ami_id": "ami-12c6146b"},
        "data_location": {"bucket": "atelier-data", "prefix": "csv"},
        "protect_from_deletion": False,  # so that destroy may delete
        "alarm_emails": ["oncall@example.com"],
        "monitoring": {"cidrs": ["10.40.200.0/24"]},
        "services": {service: {"domain_name": f"{service}.example.com", "certificate_arn": arns[service],
                               "min_instances": 1, "max_instances": 2,
                               "read_replicas": replicas if service == "reviews" else 0}
                     for service in services},
    }


@pytest.fixture(scope="module")
def workspace(emulator, tmp_path_factory):
    """A copy of modules/ and envs/ with the test's override files, initialised from the mirror."""
    root = tmp_path_factory.mktemp("terraform")
    for folder in ("modules", "envs"):
        shutil.copytree(TERRAFORM / folder, root / folder,
                        ignore=shutil.ignore_patterns(".terraform*", "terraform.tfstate*", "*.tfvars", "backend.hcl"))
    env_dir = root / "envs" / "production"
    endpoints = "\n".join(f'    {name:<14} = "{emulator}"' for name in ENDPOINTS)
    (env_dir / "emulator_override.tf").write_text(f'''terraform {{
  backend "local" {{}}
}}

provider "aws" {{
  access_key                  = "emulator"
  secret_key                  = "emulator"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
''')
    # The emulator launches instances but no boot script runs in them, so no instance ever
    # reports healthy: the group is created without waiting for capacity.
    (root / "modules" / "service_fleet" / "emulator_override.tf").write_text(
        'resource "aws_autoscaling_group" "this" {\n  wait_for_capacity_timeout = "0"\n}\n')
    cli = root / "terraform.rc"
    cli.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n}}\n')
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(cli), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1",
               TF_DATA_DIR=str(env_dir / ".terraform"))
    for name in [n for n in env if n.startswith("AWS_")]:
        del env[name]  # never a real account's settings

    def terraform(*args, timeout=600):
        done = subprocess.run(["terraform", *args, "-no-color"], cwd=env_dir, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"terraform {args[0]}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done.stdout

    terraform("init", "-input=false")
    return env_dir, terraform, certificates(emulator)


def test_init_uses_the_mirror_and_the_configuration_is_valid(workspace):
    env_dir, terraform, _ = workspace
    lock = (env_dir / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock
    assert lock.count('provider "') == 1  # no other provider
    terraform("validate")


def test_plan_the_three_services_with_a_replica(workspace):
    env_dir, terraform, arns = workspace
    (env_dir / "full.tfvars.json").write_text(json.dumps(variables(arns, SERVICES, replicas=1)))
    terraform("plan", "-input=false", "-var-file=full.tfvars.json", "-out=full.plan")
    plan = json.loads(terraform("show", "-json", "full.plan"))
    created = [c["address"] for c in plan["resource_changes"] if c["change"]["actions"] == ["create"]]
    for service in SERVICES:
        assert f'module.service_fleet["{service}"].aws_autoscaling_group.this' in created
        assert f'module.database["{service}"].aws_db_instance.primary' in created
    assert 'module.database["reviews"].aws_db_instance.replica[0]' in created
    assert 'module.database["reviews"].aws_cloudwatch_metric_alarm.this["atelier-production-reviews-replica-1-db-lag"]' in created


def test_apply_read_the_outputs_then_destroy(workspace, emulator):
    """One service without replicas: the emulator gives every database instance the same
    resource id, so a second one cannot be read back (README: what the emulator cannot model)."""
    env_dir, terraform, arns = workspace
    (env_dir / "applied.tfvars.json").write_text(json.dumps(variables(arns, ("reviews",), replicas=0)))
    try:
        terraform("apply", "-input=false", "-auto-approve", "-var-file=applied.tfvars.json")
        outputs = json.loads(terraform("output", "-json"))
        assert outputs["base_urls"]["value"] == {"reviews": "https://reviews.example.com"}
        assert outputs["balancer_dns_names"]["value"]["reviews"].endswith(".elb.amazonaws.com")
        assert outputs["autoscaling_groups"]["value"] == {"reviews": "atelier-production-reviews"}
        assert outputs["alarm_topic_arn"]["value"].startswith(f"arn:aws:sns:{REGION}:")
        assert outputs["access_logs_bucket"]["value"].startswith("atelier-production-alb-logs-")
        primary = outputs["database_endpoints"]["value"]["reviews"]["primary"]
        assert primary.endswith(":5432/reviews")
        state = json.loads(terraform("show", "-json"))
        resources = {}

        def walk(module):
            for resource in module.get("resources", []):
                resources[resource["address"]] = resource["values"]
            for child in module.get("child_modules", []):
                walk(child)

        walk(state["values"]["root_module"])
        group = resources['module.service_fleet["reviews"].aws_autoscaling_group.this']
        assert group["health_check_type"] == "ELB"
        (health,) = resources['module.load_balancer["reviews"].aws_lb_target_group.instances']["health_check"]
        assert health["path"] == "/healthz"
        assert len(resources) > 100
    finally:
        terraform("destroy", "-input=false", "-auto-approve", "-var-file=applied.tfvars.json")
    left = json.loads(terraform("show", "-json"))
    assert not left.get("values", {}).get("root_module", {}).get("resources")
