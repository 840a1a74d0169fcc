"""Check here, before spending device time, that code imports with only the lent GPU machine's packages.

Builds a site folder of symlinks to this virtual environment's installs of the packages the device image holds
(/work/.library/device/KINDS.md's list) plus those carried as wheels (scripts/device_wheels.sh), then runs
the given Python code under ``python -S`` with only that folder (and the repo) on the path:

    .venv/bin/python scripts/device_import_check.py "import mathsft.rl.loop" "import trl"
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = Path("/work/.library/device/KINDS.md")
CARRIED = "pydantic pydantic-core annotated-types typing-inspection math-verify latex2sympy2-extended "
CARRIED += "antlr4-python3-runtime datasets dill multiprocess gguf trl"
# needed here only because this venv's huggingface_hub is newer than the device's (1.33 there: 2.x here);
# their own requirements are added too
LOCAL_ONLY = "httpx2 httpcore2"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: list[str]) -> set[str]:
    seen: set[str] = set()
    while names:
        name = norm(names.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        names += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    return seen


def device_names() -> set[str]:
    text = KINDS.read_text()
    listed = text.split("Packages:", 1)[1].split("\n", 1)[0]
    names = {norm(n) for n in re.findall(r"[A-Za-z0-9][A-Za-z0-9_.-]*", listed)}
    return names | {norm(n) for n in CARRIED.split()} | closure(LOCAL_ONLY.split())


def build_site(folder: Path) -> list[str]:
    wanted, linked = device_names(), []
    for dist in md.distributions():
        if norm(dist.metadata["Name"]) not in wanted:
            continue
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top.endswith(".pth") or top == "__pycache__" or top.startswith("_distutils"):
                continue
            src, dst = base / top, folder / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
                linked.append(top)
    return linked


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        build_site(Path(tmp))
        for code in sys.argv[1:]:
            extra = os.environ.get("EXTRA_PYTHONPATH", "")  # e.g. a carried folder of stand-in packages
            env = {"PYTHONPATH": f"{repo}:{repo / 'bench'}:{tmp}:{extra}", "PATH": "/usr/bin:/bin"}
            env |= {k: os.environ[k] for k in ("HOME", "MATHSFT_CACHE") if k in os.environ}
            done = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True)
            status = "ok" if done.returncode == 0 else "FAILED"
            print(f"{status}: {code}")
            if done.stdout.strip():
                print(done.stdout.strip()[-800:])
            if done.returncode:
                print(done.stderr[-1500:])


if __name__ == "__main__":
    main()
