"""The Argo CD health check (``deploy/argocd/health.lua``) and the GitOps examples in ``deploy/``.

Every case of ``docs/status-contract.md`` §3 is a fixture in ``fixtures/argocd/``: an ``OdooEnvironment``
(``object``) beside the health Argo CD must report for it (``expected``). The script runs under
Lua 5.1 (the dialect of gopher-lua, Argo CD's interpreter) the way Argo CD runs it: the object as
the global ``obj``, the script as a chunk whose return value is the health; and in a sandbox without
any standard library besides the basic functions, which is stricter than Argo CD's defaults.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    from lupa.lua51 import LuaRuntime, lua_type
except ImportError:  # a lupa build without the bundled Lua 5.1
    from lupa import LuaRuntime, lua_type

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "deploy" / "argocd" / "health.lua"
ARGOCD_CM = ROOT / "deploy" / "argocd" / "argocd-cm.yaml"
CM_KEY = "resource.customizations.health.oec.sh_OdooEnvironment"
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "argocd").glob("*.yaml"))
GITOPS_FILES = sorted([*(ROOT / "deploy" / "argocd").glob("*.yaml"), *(ROOT / "deploy" / "flux").glob("*.yaml")])
ARGO_HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# Everything but the basic functions (ipairs, pairs, tostring, type, ...): Argo CD opens only the
# base, package, table and a reduced os library unless useOpenLibs is set; the script needs none.
SANDBOX = """
getmetatable("").__index = nil  -- no ("x"):sub(...) style string methods either
for _, name in ipairs({"string", "table", "os", "io", "math", "debug", "coroutine", "package",
                       "utf8", "bit32", "jit", "ffi", "require", "module", "load", "loadstring",
                       "loadfile", "dofile", "setfenv", "getfenv", "collectgarbage", "newproxy"}) do
  _G[name] = nil
end
"""


def to_lua(lua: Any, value: Any) -> Any:
    """A YAML/JSON value as Argo CD hands it to Lua: maps and lists become tables (lists 1-based),
    scalars stay scalars, timestamps are RFC 3339 strings (as in the object's JSON), nulls vanish."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = to_lua(lua, item)
        return table
    if isinstance(value, list):
        return lua.table(*(to_lua(lua, item) for item in value if item is not None))
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def argo_health(obj: dict[str, Any], script: Path = HEALTH_LUA) -> dict[str, Any]:
    """Run the health script (default health.lua) for ``obj`` in a fresh sandboxed Lua state; the
    returned table as a dict."""
    lua = LuaRuntime(register_eval=False, register_builtins=False)
    lua.execute(SANDBOX)
    lua.globals().obj = to_lua(lua, obj)
    result = lua.execute(script.read_text())
    assert lua_type(result) == "table", f"{script.name} returned {result!r}, Argo CD needs a table"
    return dict(result.items())


def load_fixture(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    assert set(data) == {"expected", "object"}, f"{path.name}: needs exactly 'expected' and 'object'"
    return data


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_health(path: Path) -> None:
    case = load_fixture(path)
    assert argo_health(case["object"]) == case["expected"]


def test_fixtures_cover_every_argo_state() -> None:
    statuses = {load_fixture(p)["expected"]["status"] for p in FIXTURES}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert statuses <= ARGO_HEALTH_STATUSES


def test_generation_decoded_as_float_or_string() -> None:
    """gopher-lua has only float64 numbers, and a json.Number reaches Lua as a string."""
    case = load_fixture(next(p for p in FIXTURES if p.stem == "healthy"))
    obj = case["object"]
    obj["metadata"]["generation"] = 3.0
    obj["status"]["conditions"][0]["observedGeneration"] = "3"
    assert argo_health(obj)["status"] == "Healthy"


@pytest.mark.parametrize("script", sorted((ROOT / "deploy" / "argocd").glob("health*.lua")), ids=lambda p: p.name)
def test_script_uses_only_basic_lua(script: Path) -> None:
    code = re.sub(r"--.*", "", script.read_text())  # no "--" inside the script's strings
    libraries = r"\b(string|table|os|io|math|debug|coroutine|package|utf8|bit32)\s*\."
    assert not re.findall(libraries, code)
    assert not re.findall(r"\b(require|load|loadstring|loadfile|dofile|setfenv|getfenv)\s*\(", code)
    assert not re.findall(r"[\w\)\]\"']\s*:\s*\w+\s*\(", code), "string methods need the string library"


def test_argocd_cm_embeds_health_lua_verbatim() -> None:
    (config_map,) = yaml.safe_load_all(ARGOCD_CM.read_text())
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "argocd-cm"
    assert config_map["data"][CM_KEY] == HEALTH_LUA.read_text(), (
        "deploy/argocd/argocd-cm.yaml drifted from deploy/argocd/health.lua: copy the script into it"
    )


@pytest.mark.parametrize("path", GITOPS_FILES, ids=[p.name for p in GITOPS_FILES])
def test_gitops_manifests_parse(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents
    for document in documents:
        assert document.get("apiVersion") and document.get("kind"), f"{path.name}: apiVersion/kind missing"
        assert document.get("metadata", {}).get("name")


def commented_yaml(path: Path, first_line: str) -> Any:
    """The YAML example commented out in ``path`` that starts with the line ``# <first_line>``
    and ends before the first line that is not a comment, an empty comment or less indented."""
    lines = [line.lstrip() for line in path.read_text().splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and line[1:].strip() == first_line)
    indent = len(lines[start]) - len(lines[start][1:].lstrip())
    block = []
    for line in lines[start:]:
        if not line.startswith("#") or not line[1:].strip() or len(line) - len(line[1:].lstrip()) < indent:
            break
        block.append(line[indent:])
    return yaml.safe_load("\n".join(block))


def test_argocd_application_and_keep_example() -> None:
    (app,) = yaml.safe_load_all((ROOT / "deploy" / "argocd" / "application.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    assert "resources-finalizer.argocd.argoproj.io" not in app["metadata"].get("finalizers", [])
    keep = commented_yaml(ROOT / "deploy" / "argocd" / "application.yaml", "apiVersion: oec.sh/v1alpha1")
    assert keep["kind"] == "OdooEnvironment"
    assert keep["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    assert keep["spec"]["deletionPolicy"] == "Orphan"


def test_flux_kustomization_and_keep_example() -> None:
    flux = ROOT / "deploy" / "flux"
    (source,) = yaml.safe_load_all((flux / "gitrepository.yaml").read_text())
    assert (source["apiVersion"], source["kind"]) == ("source.toolkit.fluxcd.io/v1", "GitRepository")
    path = flux / "kustomization-odoo-environments.yaml"
    (ks,) = yaml.safe_load_all(path.read_text())
    assert (ks["apiVersion"], ks["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert ks["spec"]["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert ks["spec"]["wait"] is True and ks["spec"]["prune"] is True and ks["spec"]["timeout"]
    keep = commented_yaml(path, "apiVersion: oec.sh/v1alpha1")
    assert keep["kind"] == "OdooEnvironment"
    assert keep["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    assert keep["spec"]["deletionPolicy"] == "Orphan"
    (exprs,) = commented_yaml(path, "healthCheckExprs:")["healthCheckExprs"]
    assert (exprs["apiVersion"], exprs["kind"]) == ("oec.sh/v1alpha1", "OdooEnvironment")
    assert set(exprs) == {"apiVersion", "kind", "inProgress", "failed", "current"}
