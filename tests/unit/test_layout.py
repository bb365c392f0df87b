"""The shape of the code, checked: each domain package is the only writer of its tables, and no file grows past
what a reader takes in at once."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"
MAX_LINES = 400

# Each domain package and the models whose tables only it writes.
OWNERS = {
    "accounts": {"User", "ApiToken", "OIDCIdentity", "WebSession"},
    "communities": {"Community", "Membership"},
    "guides": {"Guide", "GuideRevision", "GuideUpstream"},
    "mentorship": {"MentorshipOffer", "MentorshipRequest"},
    "registration": {"Invite"},
}
# Names code gives to a loaded row of those models: an attribute assigned on one of them is a write.
ROW_NAMES = {
    "accounts": {"user", "token", "identity", "web_session"},
    "communities": {"community", "membership"},
    "guides": {"guide", "revision", "upstream"},
    "mentorship": {"offer", "request"},
    "registration": {"invite"},
}


def _owner_of(path: Path) -> str | None:
    parts = path.relative_to(SERVER).parts
    return parts[0] if parts[0] in OWNERS else None


def _writes(tree: ast.AST, models: set[str], rows: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in models:
                found.append(f"line {node.lineno}: builds a {node.func.id}")
            if node.func.id in ("insert", "update", "delete") and node.args:
                target = node.args[0]
                if isinstance(target, ast.Name) and target.id in models:
                    found.append(f"line {node.lineno}: {node.func.id}({target.id})")
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        for target in targets:
            for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(element, ast.Attribute)
                    and isinstance(element.value, ast.Name)
                    and element.value.id in rows
                ):
                    found.append(f"line {node.lineno}: sets {element.value.id}.{element.attr}")
    return found


def test_only_a_domain_package_writes_its_tables() -> None:
    offences = []
    for path in sorted(SERVER.rglob("*.py")):
        owner = _owner_of(path)
        if path.relative_to(SERVER).parts[0] == "models":
            continue  # where the tables are declared
        tree = ast.parse(path.read_text(), str(path))
        for domain, models in OWNERS.items():
            if domain == owner:
                continue
            for offence in _writes(tree, models, ROW_NAMES[domain]):
                offences.append(f"{path.relative_to(ROOT)} {offence} (only server/{domain}/ writes it)")
    assert offences == []


def test_the_scan_sees_a_write_outside_the_domain() -> None:
    # The scan above must be able to fail: each kind of write it looks for, written where it does not belong.
    code = "guide = Guide(title='x')\nsession.execute(update(Guide))\nguide.title = 'y'\ncommunity.name, x = 'n', 1\n"
    found = _writes(
        ast.parse(code), OWNERS["guides"] | OWNERS["communities"], ROW_NAMES["guides"] | ROW_NAMES["communities"]
    )
    assert len(found) == 4


def test_no_server_module_is_longer_than_a_reader_takes_in() -> None:
    tracked = subprocess.run(["git", "ls-files", "server/*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / name for name in tracked.stdout.split()] or sorted(SERVER.rglob("*.py"))
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
