"""Kubeconfig users with an ``exec`` credential plugin (as on EKS, GKE, AKS), on the real apiserver.

The operator runs as a process whose kubeconfig user is an ``exec`` plugin: a Python script the
test writes, printing an ``ExecCredential`` with a ServiceAccount token of the control plane
(the permissions of ``deploy/rbac``, as in ``test_rbac.py``). The tokens are bound to Secrets
(``kubectl create token --bound-object-kind Secret``), so deleting a Secret makes the apiserver
refuse its token:

- the operator reconciles a resource to Ready with the plugin's token;
- when the token's ``expirationTimestamp`` has passed, kopf runs the login (and the plugin)
  again before its next request, while the old token is still valid on the apiserver (so no
  401 can have caused it), and keeps working once the apiserver refuses the old token;
- a plugin that fails is named (kubeconfig user, command, its stderr) in the operator's log,
  which holds no token.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kubernetes import client

from oec_operator.kube import login as kubelogin

from .conftest import Cluster, OperatorProcess, Simulator, environment, kubectl_run, wait_for
from .test_rbac import (
    RBAC_DIR,
    SA,
    TIMESTAMP,
    Access,
    assert_no_refusal,
    grant_operator_role,
    render,
    start_operator,
)

pytestmark = pytest.mark.integration

API_VERSION = "client.authentication.k8s.io/v1"
#: Lifetime of the first tokens the plugin hands out (its expirationTimestamp, not the token's
#: real lifetime on the apiserver, which is at least 10 minutes).
SHORT_LIFETIME = 6.0

#: The plugin: prints the token of ``$PLUGIN_STATE`` (JSON: ``token``, ``lifetime`` in seconds,
#: ``phase``) with an expirationTimestamp ``lifetime`` seconds ahead, and appends one line per run
#: (the phase) to ``invocations`` next to the state file.
PLUGIN = """#!{python}
import datetime, json, os, pathlib, sys
state_path = pathlib.Path(os.environ["PLUGIN_STATE"])
request = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert request["kind"] == "ExecCredential", request
state = json.loads(state_path.read_text())
with open(state_path.parent / "invocations", "a") as log:
    log.write(state["phase"] + "\\n")
expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=state["lifetime"])
print(json.dumps({{"apiVersion": request["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": state["token"], "expirationTimestamp": expiry.isoformat()}}}}))
"""

#: A plugin that fails as ``aws eks get-token`` does with an expired SSO session; it also prints
#: a token-like ExecCredential on stdout, which must appear nowhere.
FAILING_PLUGIN = """#!{python}
import json, sys
print(json.dumps({{"apiVersion": "{api}", "kind": "ExecCredential", "status": {{"token": "{token}"}}}}))
sys.stderr.write("Error when retrieving token from sso: Token has expired and refresh failed\\n")
sys.exit(1)
"""
LEAKED = "stdout-token-of-a-failing-plugin-0123456789"
UNAUTHORIZED = re.compile(r"\b401\b|unauthorized", re.IGNORECASE)


def write_plugin(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def exec_kubeconfig(base: Path, path: Path, user: str, command: Path, env: dict[str, str] | None = None) -> Path:
    """``base`` (a kubeconfig) with its user replaced by ``user``, an exec plugin ``command``."""
    config = yaml.safe_load(base.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    context["user"] = user
    config["users"] = [{"name": user, "user": {"exec": {
        "apiVersion": API_VERSION, "command": str(command), "args": ["get-token", "--cluster", "it"],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()], "interactiveMode": "Never",
    }}}]
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class Plugin:
    """The exec plugin's state file (the token it hands out) and its invocation log."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.state = directory / "state.json"
        self.invocations_file = directory / "invocations"
        self.command = write_plugin(directory / "get-token", PLUGIN.format(python=sys.executable))

    def hand_out(self, phase: str, token: str, lifetime: float) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"phase": phase, "token": token, "lifetime": lifetime}))
        os.replace(tmp, self.state)  # the plugin never reads half a file

    def invocations(self) -> list[str]:
        return self.invocations_file.read_text().split() if self.invocations_file.exists() else []


def bound_token(kube: Any, namespace: str, secret: str) -> str:
    """A token of the operator's ServiceAccount, valid only while Secret ``secret`` exists."""
    kubectl_run(kube, "-n", namespace, "create", "secret", "generic", secret)
    proc = kubectl_run(kube, "-n", namespace, "create", "token", SA, "--duration=600s",
                       "--bound-object-kind=Secret", f"--bound-object-name={secret}")
    return proc.stdout.strip()


def accepted(kube: Any, token: str) -> bool:
    """Whether the apiserver authenticates ``token`` (discovery: any authenticated user may)."""
    with kube.api_client(token=token) as api:
        try:
            client.CoreApi(api).get_api_versions()
        except client.ApiException as exc:
            if exc.status == 401:
                return False
            raise
    return True


@pytest.fixture
def access(kube: Any, namespace: str, crd: Path, tmp_path: Path) -> Iterator[Access]:
    grants = Access(kube, tmp_path)
    yield grants
    grants.cleanup([namespace])


def test_exec_plugin_login_and_refresh_on_expiry(
    kube: Any, cluster: Cluster, simulator: Simulator, operator_factory: Any, access: Access, tmp_path: Path,
) -> None:
    ns = cluster.namespace
    token_kubeconfig = grant_operator_role(access, render(kube, RBAC_DIR), ns)
    plugin = Plugin(tmp_path / "plugin")
    kubeconfig = exec_kubeconfig(token_kubeconfig, tmp_path / "kubeconfig-exec", "eks-user", plugin.command,
                                 {"PLUGIN_STATE": str(plugin.state)})
    first, second = bound_token(kube, ns, "login-first"), bound_token(kube, ns, "login-second")
    assert accepted(kube, first) and accepted(kube, second)
    plugin.hand_out("first", first, SHORT_LIFETIME)

    op: OperatorProcess = start_operator(access, operator_factory, kubeconfig, ns)
    project = simulator.new_project("exec-login")
    cluster.apply(environment("exec-one", project))
    cluster.wait_ready("exec-one")
    assert "kubeconfig user 'eks-user': exec credential plugin" in op.output()
    assert "gave a token, valid until" in op.output()

    # From now on the plugin hands out the second token. Once every credential with the first
    # token has passed its expirationTimestamp, kopf must log in again before its next request,
    # although the first token is still valid on the apiserver (no 401 can cause this login).
    plugin.hand_out("second", second, 3600)
    mark = len(op.output())
    time.sleep(SHORT_LIFETIME + 1)
    assert accepted(kube, first)
    cluster.apply(environment("exec-two", project))
    cluster.wait_ready("exec-two")
    wait_for(lambda: "Re-authentication has finished" in op.output()[mark:], timeout=20, what="kopf logging in again")
    assert "exec credential plugin" in op.output()[mark:] and "second" in plugin.invocations()

    # The apiserver refuses the first token from now on: the operator works with the second only.
    kubectl_run(kube, "-n", ns, "delete", "secret", "login-first")
    wait_for(lambda: not accepted(kube, first), timeout=30, what="the apiserver refusing the first token")
    cluster.apply(environment("exec-three", project))
    cluster.wait_ready("exec-three")
    cluster.delete("exec-one")
    wait_for(lambda: cluster.get("exec-one") is None, timeout=30, what="exec-one deleted")

    invocations = plugin.invocations()
    print(f"plugin runs: {len(invocations)} ({invocations.count('first')} first, {invocations.count('second')} "
          f"second); kopf logins after the first: {op.output().count('Re-authentication has finished')}")
    assert len(invocations) >= 2
    log = op.output()
    assert first not in log and second not in log
    # Every new login came before a request with a lapsed or refused token: never a 401.
    assert not [ln for ln in log.splitlines() if UNAUTHORIZED.search(TIMESTAMP.sub("", ln, count=1))]
    assert_no_refusal(op)


def test_a_failing_exec_plugin_is_named_in_the_log(
    kube: Any, cluster: Cluster, operator_factory: Any, tmp_path: Path,
) -> None:
    command = write_plugin(tmp_path / "aws-eks-get-token",
                           FAILING_PLUGIN.format(python=sys.executable, api=API_VERSION, token=LEAKED))
    kubeconfig = exec_kubeconfig(Path(kube.kubeconfig), tmp_path / "kubeconfig-broken", "sso-admin", command)
    op = operator_factory(kubeconfig=kubeconfig)
    expected = (f"kubeconfig user 'sso-admin': exec credential plugin '{command}' failed: exec: process returned 1. "
                "Error when retrieving token from sso: Token has expired and refresh failed")
    wait_for(lambda: expected in op.output(), timeout=30, what="the plugin's failure in the operator log")
    line = next(ln for ln in op.output().splitlines() if expected in ln)
    assert "Activity 'login' failed temporarily" in line
    assert op.proc is not None and op.proc.poll() is None  # it waits and tries again
    op.stop()
    assert LEAKED not in op.output()
    assert "Traceback" not in op.output()


async def test_exec_plugin_client_certificate(kube: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin may return a client certificate instead of a token (the login handler in-process,
    its session against the apiserver)."""
    if kube.control_plane is None:
        pytest.skip("needs the local control plane's client CA")
    cert, key = kube.control_plane.issue_client_cert("exec-cert-user", ("exec-cert-group",))
    status = {"clientCertificateData": cert.decode(), "clientKeyData": key.decode()}
    command = write_plugin(tmp_path / "cert-plugin", f"#!{sys.executable}\nimport json\nprint(json.dumps("
                           f"{{'apiVersion': {API_VERSION!r}, 'kind': 'ExecCredential', 'status': {status!r}}}))\n")
    monkeypatch.setenv("KUBECONFIG", str(exec_kubeconfig(Path(kube.kubeconfig), tmp_path / "kc", "cert", command)))
    session = await kubelogin.login(settings=kopf.OperatorSettings(), logger=logging.getLogger("test"))
    assert session is not None and session.expiration is None
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    url = f"{session.server}/apis/authentication.k8s.io/v1/selfsubjectreviews"
    async with session.aiohttp_session as http, http.post(url, json=review) as resp:
        assert resp.status == 201, await resp.text()
        user = (await resp.json())["status"]["userInfo"]
    assert user["username"] == "exec-cert-user" and "exec-cert-group" in user["groups"]
