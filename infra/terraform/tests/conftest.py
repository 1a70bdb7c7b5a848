"""Parsed Terraform for the structure tests: every module and environment root of
infra/terraform, read with python-hcl2 and normalised (quotes off the strings, parser markers
dropped), so that a test reads `modules["database"].resource("aws_db_instance", "primary")`."""
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parents[1]
ROOT = TERRAFORM.parents[1]
MODULE_NAMES = ("network", "service_fleet", "load_balancer", "database", "kms_key")
# The Terraform checks' tools live in their own virtualenv (make test creates it).
INFRA_VENV = Path(os.environ.get("ATELIER_INFRA_VENV", ROOT / ".venv-infra"))


def plain(value):
    """python-hcl2 keeps string quotes and adds markers; tests compare plain values."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass
class Config:
    """The blocks of one Terraform folder, keyed by type and name."""
    path: Path
    blocks: dict = field(default_factory=dict)  # ("resource", type, name) -> body, ("module", name) -> body, ...

    def resource(self, kind, name):
        return self.blocks[("resource", kind, name)]

    def resources(self, kind):
        return {key[2]: body for key, body in self.blocks.items() if key[:2] == ("resource", kind)}

    def named(self, block):  # variables, outputs, modules, locals
        return {key[1]: body for key, body in self.blocks.items() if key[0] == block}

    def text(self):
        return "\n".join(p.read_text() for p in sorted(self.path.glob("*.tf")))


def load_config(path: Path) -> Config:
    config = Config(path)
    for tf in sorted(path.glob("*.tf")):
        with tf.open() as handle:
            document = plain(hcl2.load(handle))
        for block, entries in document.items():
            for entry in entries:
                if block in ("resource", "data", "ephemeral"):
                    for kind, named in entry.items():
                        for name, body in named.items():
                            config.blocks[(block, kind, name)] = body
                elif block in ("variable", "output", "module"):
                    for name, body in entry.items():
                        config.blocks[(block, name)] = body
                elif block == "locals":
                    for name, body in entry.items():
                        config.blocks[("locals", name)] = body
                else:  # terraform, provider
                    config.blocks.setdefault((block,), []).append(entry)
    return config


@pytest.fixture(scope="session")
def modules():
    return {name: load_config(TERRAFORM / "modules" / name) for name in MODULE_NAMES}


@pytest.fixture(scope="session")
def production():
    return load_config(TERRAFORM / "envs" / "production")


def infra_tool(name):
    tool = INFRA_VENV / "bin" / name
    if not tool.exists():
        pytest.fail(f"{tool} is missing: `make test` (the whole suite) or `make infra-tools` installs the "
                    f"Terraform checks' tools into {INFRA_VENV}")
    return tool


@pytest.fixture(scope="session")
def terraform():
    """The terraform binary (only `fmt` and `templatefile` are used: no provider is needed)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not installed (no package registry carries it); these checks run where it is")
    return binary


@pytest.fixture(scope="session")
def tool():
    return infra_tool
