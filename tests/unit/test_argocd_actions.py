"""The Argo CD resource actions (``deploy/argocd/actions/``): the real Lua run under Lua 5.1 the way
Argo CD runs it (the live object as the global ``obj``; an action returns the changed object, the
discovery script the table of actions), in the sandbox of ``test_argocd_health.py`` plus Argo CD's
safe ``os`` module (``require("os")``: ``date`` only here, on a fixed clock)."""

from __future__ import annotations

import copy
import datetime
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .test_argocd_health import ARGOCD_CM, SANDBOX, LuaRuntime, lua_type, to_lua

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ROOT / "deploy" / "argocd" / "actions"
CM_KEY = "resource.customizations.actions.oec.sh_OdooEnvironment"
NAMES = ("restart", "redeploy", "start", "stop")
NOW = datetime.datetime(2026, 1, 15, 9, 30, 5, tzinfo=datetime.UTC)
TOKEN = "2026-01-15T09:30:05Z"


def from_lua(value: Any) -> Any:
    """A Lua value back as JSON-like Python: a table with keys 1..n is a list, others are dicts."""
    if lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and all(isinstance(k, int) for k in items) and sorted(items) == list(range(1, len(items) + 1)):
        return [from_lua(items[i]) for i in range(1, len(items) + 1)]
    return {k: from_lua(v) for k, v in items.items()}


def run_lua(path: Path, obj: dict[str, Any]) -> Any:
    """Run one script for ``obj`` in a fresh sandboxed state; its return value as Python."""
    lua = LuaRuntime(register_eval=False, register_builtins=False)
    lua.execute(SANDBOX)
    safe_os = lua.table(date=lambda fmt: NOW.strftime(fmt.removeprefix("!")) if fmt.startswith("!") else "local time")

    def require(name: str) -> Any:
        assert name == "os", f"Argo CD provides no module {name!r}"
        return safe_os

    lua.globals().require = require
    lua.globals().obj = to_lua(lua, obj)
    result = lua.execute(path.read_text())
    assert lua_type(result) == "table", f"{path.name} returned {result!r}, Argo CD needs a table"
    return from_lua(result)


def environment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "oec.sh/v1alpha1", "kind": "OdooEnvironment",
        "metadata": {"name": "acme-dev", "namespace": "odoo", "generation": 3,
                     "annotations": {"team": "erp"}},
        "spec": {"projectId": "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10", "branch": "main", **spec},
        "status": {"observedGeneration": 3, "phase": "running", "powerState": "Running"},
    }


def action(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    result = run_lua(ACTIONS / name / "action.lua", obj)
    assert isinstance(result, dict)
    return result


def discovery(obj: dict[str, Any]) -> dict[str, bool]:
    """Action name -> disabled, as the UI shows them."""
    actions = run_lua(ACTIONS / "discovery.lua", obj)
    assert set(actions) == set(NAMES)
    return {name: bool(a["disabled"]) for name, a in actions.items()}


@pytest.mark.parametrize(("name", "key"), [("restart", "oec.sh/restart-requested-at"),
                                           ("redeploy", "oec.sh/redeploy-requested-at")])
def test_token_actions_set_a_new_token_and_change_nothing_else(name: str, key: str) -> None:
    obj = environment()
    changed = action(name, obj)
    expected = copy.deepcopy(obj)
    expected["metadata"]["annotations"][key] = TOKEN
    assert changed == expected

    # An older token is replaced; a resource without annotations gets some.
    obj["metadata"]["annotations"][key] = "2026-01-14T08:00:00Z"
    assert action(name, obj)["metadata"]["annotations"][key] == TOKEN
    del obj["metadata"]["annotations"]
    assert action(name, obj)["metadata"]["annotations"] == {key: TOKEN}


@pytest.mark.parametrize("name", ["restart", "redeploy"])
def test_a_second_click_in_the_same_second_is_still_a_new_token(name: str) -> None:
    key = f"oec.sh/{name}-requested-at"
    obj = environment()
    obj["metadata"]["annotations"][key] = TOKEN
    second = action(name, obj)["metadata"]["annotations"][key]
    assert second != TOKEN
    obj["metadata"]["annotations"][key] = second
    assert action(name, obj)["metadata"]["annotations"][key] not in (second,)


@pytest.mark.parametrize(("name", "before", "after"), [("stop", None, "Stopped"), ("stop", "Running", "Stopped"),
                                                       ("start", "Stopped", "Running")])
def test_power_actions_set_spec_power_state(name: str, before: str | None, after: str) -> None:
    obj = environment(**({"powerState": before} if before else {}))
    expected = copy.deepcopy(obj)
    expected["spec"]["powerState"] = after
    assert action(name, obj) == expected


@pytest.mark.parametrize(("spec", "disabled"), [
    ({}, {"start"}),                                           # powerState absent = Running
    ({"powerState": "Running"}, {"start"}),
    ({"powerState": "Stopped"}, {"stop", "restart"}),          # OEC.sh restarts only a running one
    ({"managementPolicy": "Observe", "environmentId": "e1"}, set(NAMES)),  # the operator never writes
])
def test_discovery_offers_what_makes_sense(spec: dict[str, Any], disabled: set[str]) -> None:
    assert {n for n, off in discovery(environment(**spec)).items() if off} == disabled


def test_discovery_disables_everything_while_deleting() -> None:
    obj = environment()
    obj["metadata"]["deletionTimestamp"] = "2026-01-15T10:00:00Z"
    assert all(discovery(obj).values())


def test_argocd_cm_embeds_the_actions_verbatim() -> None:
    (config_map,) = yaml.safe_load_all(ARGOCD_CM.read_text())
    value = yaml.safe_load(config_map["data"][CM_KEY])
    assert value["discovery.lua"] == (ACTIONS / "discovery.lua").read_text(), (
        "deploy/argocd/argocd-cm.yaml drifted from deploy/argocd/actions/discovery.lua: copy it into it")
    definitions = {d["name"]: d["action.lua"] for d in value["definitions"]}
    assert set(definitions) == set(NAMES) == {p.parent.name for p in ACTIONS.glob("*/action.lua")}
    for name, script in definitions.items():
        assert script == (ACTIONS / name / "action.lua").read_text(), f"argocd-cm.yaml drifted from {name}/action.lua"


@pytest.mark.parametrize("path", [ACTIONS / "discovery.lua", *(ACTIONS / n / "action.lua" for n in NAMES)],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_use_only_basic_lua_and_os_date(path: Path) -> None:
    code = re.sub(r"--.*", "", path.read_text())
    code = code.replace('local os = require("os")', "").replace("os.date(", "")
    libraries = r"\b(string|table|os|io|math|debug|coroutine|package|utf8|bit32)\s*\."
    assert not re.findall(libraries, code)
    assert not re.findall(r"\b(require|load|loadstring|loadfile|dofile|setfenv|getfenv)\s*\(", code)
    assert not re.findall(r"[\w\)\]\"']\s*:\s*\w+\s*\(", code), "string methods need the string library"
