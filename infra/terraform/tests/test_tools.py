"""The Terraform files through the tools: checkov (no failed check; every skip says why),
`terraform fmt`, and the instance boot script rendered by Terraform's own templatefile and
checked by bash and shellcheck. All offline: no provider is downloaded."""
import json
import os
import re
import subprocess
from pathlib import Path

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parents[1]
ROOT = TERRAFORM.parents[1]
FLEET = TERRAFORM / "modules" / "service_fleet"
QUIET_TERRAFORM = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_CLI_CONFIG_FILE="/dev/null")


def test_checkov_finds_no_failed_check(tool):
    offline = dict(os.environ, BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE")
    result = subprocess.run(
        [str(tool("checkov")), "--directory", str(TERRAFORM), "--framework", "terraform",
         "--output", "json", "--compact", "--skip-download"],
        capture_output=True, text=True, env=offline, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
              for c in report["results"]["failed_checks"]]
    assert failed == [], "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 40 and summary["passed"] >= 150  # it really read the modules
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"


def test_terraform_files_are_formatted(terraform):
    result = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                            capture_output=True, text=True, env=QUIET_TERRAFORM)
    assert result.returncode == 0, result.stdout


def boot_variables():
    """The variables the launch template passes to boot.sh.tftpl, read from main.tf."""
    with (FLEET / "main.tf").open() as handle:
        document = hcl2.load(handle)
    template = next(body for entry in document["resource"] for kind, named in entry.items()
                    if kind == '"aws_launch_template"' for body in named.values())
    call = template["user_data"]
    assert "boot.sh.tftpl" in call
    return re.findall(r"(\w+)\s*=", call.split("boot.sh.tftpl", 1)[1])


def sample_value(name, task):
    if name == "task":
        return task
    if name in ("database_port", "instance_port", "gunicorn_processes", "gunicorn_workers",
                "db_pool_max", "nginx_cache", "write_rate_limit", "metrics_port", "nginx_cache_memory_percent"):
        return {"database_port": 5432, "instance_port": 80, "gunicorn_workers": 1, "db_pool_max": 10,
                "nginx_cache": 1, "write_rate_limit": 10, "metrics_port": 9100,
                "nginx_cache_memory_percent": 20}.get(name, 0)
    if name == "deploy_gate_request":
        return "/reviews/meta?product_id=1"
    if name == "service":
        return "reviews"
    if name == "trusted_proxies_cidr":
        return "10.40.0.0/16"
    return f"sample-{name}"


@pytest.fixture(scope="module")
def boot_scripts(terraform, tmp_path_factory):
    """serve, load and rotate, rendered by `terraform apply` of a root that only calls templatefile
    with the variables main.tf passes (a variable the template uses but main.tf does not pass
    fails the render)."""
    names = boot_variables()
    scripts = {}
    for task in ("serve", "load", "rotate"):
        root = tmp_path_factory.mktemp(f"boot-{task}")
        variables = {name: sample_value(name, task) for name in names}
        (root / "main.tf").write_text(
            f'output "script" {{\n  value = templatefile("{FLEET / "boot.sh.tftpl"}", '
            f'jsondecode({json.dumps(json.dumps(variables))}))\n}}\n')
        for command in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
            done = subprocess.run([terraform, *command], cwd=root, capture_output=True, text=True,
                                  env=QUIET_TERRAFORM, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        rendered = subprocess.run([terraform, "output", "-raw", "script"], cwd=root, capture_output=True,
                                  text=True, env=QUIET_TERRAFORM, check=True).stdout
        path = root / f"{task}.sh"
        path.write_text(rendered)
        scripts[task] = path
    return scripts


def test_boot_scripts_are_valid_bash_and_pass_shellcheck(boot_scripts, tool):
    for path in boot_scripts.values():
        subprocess.run(["bash", "-n", str(path)], check=True)
        lint = subprocess.run([str(tool("shellcheck")), "--shell=bash", "--severity=warning", str(path)],
                              capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout


def test_serve_task_runs_the_service_behind_the_fleets_nginx_template(boot_scripts):
    script = boot_scripts["serve"].read_text()
    assert 'SERVICE="reviews"' in script and 'TASK="serve"' in script
    assert 'python3 "$RELEASE/infra/nginx/render.py" --service' in script  # the local fleet's template
    assert "--upstream" in script and '--cache "$NGINX_CACHE"' in script
    assert "gunicorn -c python:atelier_common.gunicorn_conf $SERVICE:create_app()" in script
    assert 'systemctl enable --now "atelier-gunicorn@$i"' in script
    assert "systemctl enable --now atelier-nginx" in script
    assert "systemctl enable --now atelier-cache-listener" in script
    # The cached answers live on a tmpfs (a share of the RAM), mounted at every boot before nginx.
    memory = re.search(r"^cache_memory\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    assert 'NGINX_CACHE_MEMORY_PERCENT="20"' in script and "/proc/meminfo" in memory
    assert '"tmpfs $NGINX_CACHE_DIR tmpfs size=${size_mb}m,' in memory and ">> /etc/fstab" in memory
    assert re.search(r"^  cache_memory\n  nginx_config ", script, re.M)
    assert "RequiresMountsFor=$NGINX_CACHE_DIR" in script
    assert ("-m atelier_common.cache_listener --service $SERVICE --control unix:$NGINX_PREFIX/control/control.sock"
            in script)
    # The release installs offline: its own wheels, their hashes, no index; no PyPI, no editable.
    assert ('pip" --isolated install --quiet --no-index --find-links "$APP/wheels"' in script
            and '--require-hashes --no-deps -r "$APP/requirements/lock.txt"' in script)
    assert "requirements.txt" not in script and "pypi" not in script.lower() and " -e " not in script
    assert 'install -m 0644 "$APP/rds-ca.pem" "$CA"' in script  # the CA bundle comes with the release
    # The deploy gate: /readyz and a contract read through nginx, then the lifecycle hook.
    gate = re.search(r"^deploy_gate\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    assert '/readyz' in gate and '$INSTANCE_PORT$DEPLOY_GATE_REQUEST' in gate
    assert "complete-lifecycle-action" in gate and 'DEPLOY_GATE_REQUEST="/reviews/meta?product_id=1"' in script
    assert re.search(r"^  deploy_gate$", script, re.M)
    # Logs: rotated with size caps, shipped by the CloudWatch agent with memory and disk.
    assert "maxsize 200M" in script and "SystemMaxUse=1G" in script
    assert '--access-log "$LOGS/nginx-access.log"' in script
    for group in ("nginx-access", "nginx-error", "app", "journal", "boot"):
        assert f'"log_group_name": "$LOG_GROUP_PREFIX/{group}"' in script
    assert '"mem": {' in script and '"disk": {' in script
    assert "amazon-ssm-agent" in script and "amazon-cloudwatch-agent-ctl" in script
    # The database URL comes from the runtime secret, over verified TLS; no credential in the script.
    assert 'url=$(database_url "$RUNTIME_SECRET")' in script and "sslmode=verify-full" in script
    assert "${SERVICE_VAR}_DATABASE_URL=$url" in script


def test_load_task_loads_as_owner_then_grants_the_runtime_role(boot_scripts):
    script = boot_scripts["load"].read_text()
    body = re.search(r"^load\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    assert body.index("-m atelier_etl.load") < body.index("\n  runtime_role\n")
    assert '"$RELEASE/infra/terraform/runtime_role.py" "$SERVICE"' in script
    assert 'owner_url=$(database_url "$OWNER_SECRET")' in script
    assert '"RUNTIME_PASSWORD=$runtime_password"' in script  # in the environment, not on a command line
    assert "shutdown -h now" in script


def test_rotate_task_only_sets_the_runtime_role(boot_scripts):
    script = boot_scripts["rotate"].read_text()
    body = re.search(r"^rotate\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    assert "runtime_role" in body and "atelier_etl.load" not in body and "shutdown -h now" in body


def test_instance_nginx_is_the_fleet_template_and_nginx_accepts_it(boot_scripts, tmp_path):
    """The serve task's own nginx_config function (with its settings), run against this
    checkout's infra/nginx/render.py; the real nginx then checks the result."""
    if "--metrics-listen" not in (ROOT / "infra" / "nginx" / "render.py").read_text():
        pytest.skip("infra/nginx/render.py has no --metrics-listen yet (the instance's /metrics listener)")
    script = boot_scripts["serve"].read_text()
    settings = "\n".join(re.findall(r'^[A-Z_]+="[^"]*".*$', script, re.M))
    function = re.search(r"^nginx_config\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    prefix, conf = tmp_path / "nginx", tmp_path / "nginx.conf"
    subprocess.run(["bash", "-euo", "pipefail", "-c",
                    f'{settings}\nRELEASE="{ROOT}"\nNGINX_PREFIX="{prefix}"\nLOGS="{tmp_path}"\n'
                    f'NGINX_CACHE_DIR="{tmp_path}/memory"\nNGINX_CACHE_MAX_MB=300\nmkdir -p "$NGINX_CACHE_DIR"\n'
                    f'{function}\nnginx_config 2 > "{conf}"'],
                   check=True)
    config = conf.read_text()
    assert re.search(r"^\s*listen 80 ", config, re.M)
    assert re.findall(r"server 127\.0\.0\.1:(800\d) ", config) == ["8000", "8001"]
    assert "set_real_ip_from 10.40.0.0/16;" in config and "keepalive" in config
    assert "proxy_cache " in config  # the instance cache is on, in the tmpfs cache_memory mounts
    assert f"proxy_cache_path {tmp_path}/memory/cache " in config and "max_size=300m" in config
    checked = subprocess.run(["nginx", "-t", "-q", "-p", str(prefix), "-c", str(conf)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
