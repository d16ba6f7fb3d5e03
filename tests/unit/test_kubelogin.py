"""The exec-plugin login (:mod:`oec_operator.kube.login`, which kopf's login handler
:func:`handlers.login` calls) with real plugin processes: small Python scripts written into
``tmp_path``, no apiserver (the integration test ``tests/integration/test_exec_login.py`` has one)."""

from __future__ import annotations

import datetime
import logging
import sys
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from oec_operator.kube import login as kubelogin

API_VERSION = "client.authentication.k8s.io/v1"
TOKEN = "exec-plugin-token-must-not-be-logged"


@pytest.fixture(autouse=True)
def _no_previous_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts as a fresh process: no credential handed out yet."""
    monkeypatch.setattr(kubelogin, "_last_credential_at", None)


def plugin(tmp_path: Path, body: str, name: str = "plugin.py") -> Path:
    """An executable Python script ``name`` in ``tmp_path`` running ``body``."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    path.chmod(0o755)
    return path


def credential(**status: Any) -> str:
    return f"print(json.dumps({{'apiVersion': {API_VERSION!r}, 'kind': 'ExecCredential', 'status': {status!r}}}))"


def kubeconfig(tmp_path: Path, user: dict[str, Any], name: str = "config", user_name: str = "eks-admin") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": user_name, "namespace": "team"}}],
    }))
    return path


def exec_user(command: str, **extra: Any) -> dict[str, Any]:
    return {"exec": {"apiVersion": API_VERSION, "command": command, "interactiveMode": "Never", **extra}}


async def login(monkeypatch: pytest.MonkeyPatch, path: Path) -> kopf.ConnectionInfo:
    monkeypatch.setenv("KUBECONFIG", str(path))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings(), logger=logging.getLogger("test"))
    assert info is not None
    return await kubelogin.with_exec_credential(info)


async def test_token_and_expiry_reach_the_connection_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    expiry = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=14)).replace(microsecond=0)
    script = plugin(tmp_path, credential(token=TOKEN, expirationTimestamp=expiry.strftime("%Y-%m-%dT%H:%M:%SZ")))
    caplog.set_level(logging.INFO)
    info = await login(monkeypatch, kubeconfig(tmp_path, exec_user(str(script))))
    assert info.token == TOKEN and info.as_http_headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert info.expiration == expiry and info.expiration.tzinfo is not None
    assert (info.server, info.default_namespace, info.insecure) == ("https://127.0.0.1:6443", "team", True)
    assert "kubeconfig user 'eks-admin'" in caplog.text and "gave a token, valid until" in caplog.text
    assert TOKEN not in caplog.text


async def test_args_env_cluster_info_and_a_relative_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kubeconfig's args and env reach the plugin, with KUBERNETES_EXEC_INFO (the cluster
    with provideClusterInfo); a relative command is found next to the kubeconfig file."""
    (tmp_path / "bin").mkdir()
    plugin(tmp_path / "bin", "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
           "token = '-'.join([*sys.argv[1:], os.environ['REGION'], info['spec']['cluster']['server']])\n"
           + credential(token="{TOKEN}").replace("'{TOKEN}'", "token"), name="get-token")
    user = exec_user("./bin/get-token", args=["eks", "get-token"], env=[{"name": "REGION", "value": "eu-west-1"}],
                     provideClusterInfo=True)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    info = await login(monkeypatch, kubeconfig(tmp_path, user))
    assert info.token == "eks-get-token-eu-west-1-https://127.0.0.1:6443"
    assert info.expiration is None  # no expirationTimestamp: used until a 401


async def test_a_client_certificate_replaces_the_kubeconfig_one(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pem_cert, pem_key = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", "-----BEGIN KEY-----\n"
    script = plugin(tmp_path, credential(clientCertificateData=pem_cert, clientKeyData=pem_key))
    user = {**exec_user(str(script)), "client-certificate": "/nonexistent/cert", "client-key": "/nonexistent/key"}
    info = await login(monkeypatch, kubeconfig(tmp_path, user))
    assert (info.certificate_path, info.private_key_path) == (None, None)
    assert (info.certificate_data, info.private_key_data, info.token) == (pem_cert, pem_key, None)


async def test_merged_kubeconfigs_use_the_first_current_context(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """As kopf merges ``KUBECONFIG=a:b``: the first current-context and user entry win."""
    first = kubeconfig(tmp_path, exec_user(str(plugin(tmp_path, credential(token="first")))), name="a")
    second = kubeconfig(tmp_path, exec_user(str(plugin(tmp_path, credential(token="second"), name="p2.py"))),
                        name="b")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    user = kubelogin.current_exec_user()
    assert user is not None and user.command.endswith("plugin.py") and user.base_dir == str(tmp_path)


async def test_a_user_without_exec_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = await login(monkeypatch, kubeconfig(tmp_path, {"token": "static"}))
    assert info.token == "static" and info.expiration is None


async def test_an_expired_credential_gets_no_expiration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Otherwise kopf would find it expired at once and log in again, in a loop."""
    script = plugin(tmp_path, credential(token=TOKEN, expirationTimestamp="2020-01-01T00:00:00Z"))
    info = await login(monkeypatch, kubeconfig(tmp_path, exec_user(str(script))))
    assert info.token == TOKEN and info.expiration is None
    assert "expired at 2020-01-01T00:00:00+00:00" in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize(("body", "says"), [
    ("print(json.dumps({'status': {'token': 'x'}}), file=sys.stdout)\n"
     "sys.stderr.write('error: the SSO session has expired, run aws sso login\\n'); sys.exit(1)",
     "process returned 1. error: the SSO session has expired, run aws sso login"),
    (f"print('token {TOKEN} is not json')", "failed to decode process output"),
    ("print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential', "
     f"'status': {{'token': {TOKEN!r}}}}}))", "does not match client.authentication.k8s.io/v1"),
    (credential(expirationTimestamp="2030-01-01T00:00:00Z"), "returned neither status.token"),
    (credential(token=TOKEN, expirationTimestamp="next tuesday"), "unreadable status.expirationTimestamp"),
])
async def test_a_failing_plugin_names_user_and_command_never_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, says: str,
) -> None:
    script = plugin(tmp_path, body.replace("'x'", repr(TOKEN)))
    with pytest.raises(kubelogin.ExecPluginError) as raised:
        await login(monkeypatch, kubeconfig(tmp_path, exec_user(str(script))))
    message = str(raised.value)
    assert message.startswith(f"kubeconfig user 'eks-admin': exec credential plugin '{script}'")
    assert says in message and TOKEN not in message


async def test_a_missing_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(kubelogin.ExecPluginError, match=r"plugin 'aws-not-installed' failed: .*No such file"):
        await login(monkeypatch, kubeconfig(tmp_path, exec_user("aws-not-installed")))


async def test_the_login_handler_retries_a_failing_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf logs a TemporaryError without a traceback and calls the handler again later."""
    script = plugin(tmp_path, "sys.stderr.write('no credentials'); sys.exit(3)")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, exec_user(str(script)))))
    with pytest.raises(kopf.TemporaryError) as raised:
        await kubelogin.login(settings=kopf.OperatorSettings(), logger=logging.getLogger("test"))
    assert raised.value.delay == kubelogin.EXEC_RETRY_DELAY
    message = str(raised.value)
    assert "kubeconfig user 'eks-admin'" in message and "process returned 3. no credentials" in message


async def test_the_login_handler_session_is_bounded_and_expires(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    script = plugin(tmp_path, credential(token=TOKEN, expirationTimestamp=expiry.isoformat()))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, exec_user(str(script)))))
    session = await kubelogin.login(settings=kopf.OperatorSettings(), logger=logging.getLogger("test"))
    assert session is not None
    try:
        assert session.expiration == expiry
        assert session.aiohttp_session.headers["Authorization"] == f"Bearer {TOKEN}"
        assert session.aiohttp_session.connector is not None
        assert session.aiohttp_session.connector.limit == kubelogin.KUBE_CONNECTIONS
    finally:
        await session.aiohttp_session.close()


async def test_a_login_right_after_the_last_credential_does_not_run_the_plugin_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kopf logs in again on every 401: a token the apiserver refuses would run the plugin in a
    # tight loop (an EKS user missing from aws-auth: AWS STS many times a second).
    runs = tmp_path / "runs"
    script = plugin(tmp_path, f"open({str(runs)!r}, 'a').write('x')\n" + credential(token=TOKEN))
    path = kubeconfig(tmp_path, exec_user(str(script)))
    await login(monkeypatch, path)
    with pytest.raises(kubelogin.ExecPluginError) as refused:
        await login(monkeypatch, path)
    assert "refused the credential" in str(refused.value) and "'eks-admin'" in str(refused.value)
    assert TOKEN not in str(refused.value)
    assert runs.read_text() == "x", "the plugin ran again right after its credential"
    last_credential_at = kubelogin._last_credential_at
    assert last_credential_at is not None, "the plugin's credential was not recorded"
    monkeypatch.setattr(kubelogin, "_last_credential_at", last_credential_at - kubelogin.RELOGIN_AFTER)
    assert (await login(monkeypatch, path)).token == TOKEN, "a later login runs the plugin again"
