"""A real kube-apiserver + etcd as local processes (envtest-style), for tests, tools and the demo.

Dependencies: the standard library and ``cryptography`` (``pki.py``). The command line
is ``python tools/controlplane.py``.

Binaries (``kube-apiserver``, ``etcd``, ``kubectl``) are built by ``make k8s-bin``
(``tools/k8sbin/build.sh``) into ``$OEC_K8S_BIN_DIR`` or, by default,
``${XDG_CACHE_HOME:-~/.cache}/oec-operator/k8s-v$K8S_VERSION`` (``K8S_VERSION`` defaults to 1.36.3).

Library use::

    with ControlPlane() as cp:          # temp state dir, removed on stop()
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        token = cp.mint_token("ns", "sa")

A control plane that outlives this process (``detached.py``)::

    python tools/controlplane.py up     --state-dir DIR   # prints DIR/kubeconfig
    python tools/controlplane.py status --state-dir DIR   # exit 0 = healthy
    python tools/controlplane.py down   --state-dir DIR

What the control plane has and lacks: CRDs, CEL validation, RBAC, admission webhooks, watches,
TokenRequest all work; there is no controller-manager (no garbage collector, no namespace deletion,
no default ServiceAccounts, no ClusterRole aggregation) and no scheduler/kubelet.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .pki import TinyCA, pem_cert, pem_key, pem_public_key
from .ports import free_ports
from .processes import Child, pid_is
from .waiting import WaitTimeout, wait_until

__all__ = [
    "BINARIES",
    "DEFAULT_K8S_VERSION",
    "BinariesNotFoundError",
    "ControlPlane",
    "ControlPlaneError",
    "default_bin_dir",
    "find_bin_dir",
]

DEFAULT_K8S_VERSION = "1.36.3"
BINARIES = ("kube-apiserver", "etcd", "kubectl")
CONTEXT_NAME = "oec-local"
BUILD_HINT = "make k8s-bin"

ETCD_HEALTH_TIMEOUT = 30.0  # seconds
APISERVER_READY_TIMEOUT = 60.0  # seconds (2 cores: the first start can take ~10-20 s)
DEFAULT_NAMESPACE_TIMEOUT = 10.0  # seconds
STOP_GRACE = 20.0  # seconds between SIGTERM and SIGKILL
START_ATTEMPTS = 3


class ControlPlaneError(RuntimeError):
    """The control plane could not be started, queried or stopped (message includes log tails)."""


class BinariesNotFoundError(ControlPlaneError, FileNotFoundError):
    """kube-apiserver / etcd / kubectl are missing; the message names the build target."""


class _PortInUseError(ControlPlaneError):
    """A child process lost a port race (retryable)."""


# --------------------------------------------------------------------------- binaries


def default_bin_dir(version: str | None = None) -> Path:
    """Return the binary directory: ``$OEC_K8S_BIN_DIR`` or the versioned cache directory.

    ``version`` (e.g. ``"1.36.3"``) defaults to ``$K8S_VERSION`` or :data:`DEFAULT_K8S_VERSION`.
    The directory is not required to exist.
    """
    env = os.environ.get("OEC_K8S_BIN_DIR")
    if env:
        return Path(env).expanduser()
    version = (version or os.environ.get("K8S_VERSION") or DEFAULT_K8S_VERSION).removeprefix("v")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "oec-operator" / f"k8s-v{version}"


def find_bin_dir(bin_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return a directory holding executable ``kube-apiserver``, ``etcd`` and ``kubectl``.

    Raises :class:`BinariesNotFoundError` (naming ``make k8s-bin``) if any is missing; never
    falls back to binaries on ``PATH`` (their versions would not match).
    """
    path = Path(bin_dir).expanduser() if bin_dir else default_bin_dir()
    missing = [b for b in BINARIES if not os.access(path / b, os.X_OK)]
    if missing:
        raise BinariesNotFoundError(
            f"missing {', '.join(missing)} in {path}: run `{BUILD_HINT}` "
            f"(or tools/k8sbin/build.sh {path}); set OEC_K8S_BIN_DIR to use another directory"
        )
    return path.resolve()


# --------------------------------------------------------------------------- process helpers


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _wait_until(what: str, check: Callable[[], bool], timeout: float, alive: Callable[[], None]) -> None:
    """Poll ``check()`` every 0.1 s until True, calling ``alive()`` (raises if a process died)
    first each time; :class:`ControlPlaneError` after ``timeout`` s."""
    def ready() -> bool:
        alive()
        return check()

    try:
        wait_until(ready, timeout, 0.1, what)
    except WaitTimeout:
        raise ControlPlaneError(f"timed out after {timeout:.0f} s waiting for {what}") from None


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver as local child processes, with an admin kubeconfig.

    Args:
        bin_dir: directory with ``kube-apiserver``, ``etcd``, ``kubectl`` (default:
            :func:`default_bin_dir`). Checked in the constructor: raises
            :class:`BinariesNotFoundError` naming ``make k8s-bin`` if anything is missing.
        state_dir: where data dir, certificates (``pki/``), logs (``etcd.log``,
            ``kube-apiserver.log``), ``kubeconfig`` and ``pids`` go. Default: a new temp dir.
        keep_state: if True, :meth:`stop` removes nothing. Otherwise it removes the temp state
            dir entirely, or, for a given ``state_dir``, everything but the two logs.
        detached: start the processes in their own session so they outlive this Python process
            (CLI ``up``); otherwise they get their own process group and are SIGKILLed by the
            kernel if the thread that called :meth:`start` exits without :meth:`stop` (so call
            ``start()`` from a long-lived thread, e.g. the main thread).
        start_timeout: seconds to wait for ``/readyz`` per attempt.

    Attributes (valid after :meth:`start`): ``kubeconfig`` (Path), ``server`` (``https://127.0.0.1:<port>``),
    ``bin_dir``, ``state_dir`` (Paths), ``ca_pem`` (serving CA, PEM text), ``ca_file``,
    ``admin_cert_file``, ``admin_key_file`` (Paths), ``etcd_url``.
    """

    def __init__(
        self,
        bin_dir: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        keep_state: bool = False,
        detached: bool = False,
        start_timeout: float = APISERVER_READY_TIMEOUT,
    ) -> None:
        self.bin_dir = find_bin_dir(bin_dir)
        self._own_state_dir = state_dir is None
        self.state_dir = (
            Path(state_dir).expanduser().resolve()
            if state_dir is not None
            else Path(tempfile.mkdtemp(prefix="oec-controlplane-"))
        )
        self.keep_state = keep_state
        self.detached = detached
        self.start_timeout = start_timeout
        self.server = ""
        self.etcd_url = ""
        self.ca_pem = ""
        self._children: dict[str, Child] = {}
        self._client_ca: TinyCA | None = None  # set by start(); an attached instance has none

    # paths -----------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Path of the admin kubeconfig (cluster/user/context ``oec-local``)."""
        return self.state_dir / "kubeconfig"

    @property
    def kubectl(self) -> Path:
        """Path of the kubectl binary matching the server version."""
        return self.bin_dir / "kubectl"

    @property
    def pki_dir(self) -> Path:
        """The apiserver's ``--cert-dir`` (all generated certificates and keys)."""
        return self.state_dir / "pki"

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that signed the apiserver's serving certificate."""
        return self.pki_dir / "serving-ca.crt"

    @property
    def admin_cert_file(self) -> Path:
        """Admin client certificate (CN=admin, O=system:masters)."""
        return self.pki_dir / "admin.crt"

    @property
    def admin_key_file(self) -> Path:
        """Private key of :attr:`admin_cert_file`."""
        return self.pki_dir / "admin.key"

    @property
    def pids_file(self) -> Path:
        """JSON file with pids, URLs and paths of a running control plane."""
        return self.state_dir / "pids"

    def log_file(self, name: str) -> Path:
        """Log (stdout+stderr) of process ``name`` (``"etcd"`` or ``"kube-apiserver"``)."""
        return self.state_dir / f"{name}.log"

    # lifecycle ---------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start etcd and kube-apiserver and wait until the API is ready; return ``self``.

        Retries the whole start up to 3 times if a port was taken in between. Raises
        :class:`ControlPlaneError` (with the tail of the failing process's log) when a process
        exits early or ``/readyz`` is not OK within ``start_timeout`` seconds.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in ("etcd", "kube-apiserver"):
            self.log_file(name).write_bytes(b"")
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once(attempt)
                return self
            except _PortInUseError as e:
                self._stop_processes()
                if attempt == START_ATTEMPTS:
                    raise ControlPlaneError(f"{e} ({attempt} attempts)\n{self._log_tails()}") from e
            except ControlPlaneError as e:
                self._stop_processes()
                raise ControlPlaneError(f"{e}\n{self._log_tails()}") from e
            except BaseException:
                self._stop_processes()
                raise
        raise AssertionError("unreachable")

    def _log_tails(self, lines: int = 15) -> str:
        parts = [f"logs in {self.state_dir}:"]
        for name in ("etcd", "kube-apiserver"):
            parts.append(f"--- {self.log_file(name)} (last {lines} lines) ---\n{_tail(self.log_file(name), lines)}")
        return "\n".join(parts)

    def _start_once(self, attempt: int) -> None:
        for sub in ("etcd-data", "pki"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        etcd_port, peer_port, api_port = free_ports(3)
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://127.0.0.1:{api_port}"

        data_dir = self.state_dir / "etcd-data"
        data_dir.mkdir(mode=0o700)
        self._spawn(
            "etcd",
            [
                f"--advertise-client-urls={self.etcd_url}",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
            ],
            attempt,
        )
        _wait_until("etcd /health", self._etcd_healthy, ETCD_HEALTH_TIMEOUT, self._check_alive)

        self._write_pki()
        pki = self.pki_dir
        self._spawn(
            "kube-apiserver",
            [
                "--advertise-address=127.0.0.1",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--bind-address=127.0.0.1",
                f"--cert-dir={pki}",
                f"--client-ca-file={pki / 'client-cert-auth-ca.crt'}",
                "--disable-admission-plugins=ServiceAccount",
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={api_port}",
                f"--service-account-issuer={self.server}/",
                f"--service-account-key-file={pki / 'sa-signer.pub'}",
                f"--service-account-signing-key-file={pki / 'sa-signer.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
            ],
            attempt,
        )
        _wait_until(
            "kube-apiserver /readyz",
            lambda: self._get_status("/readyz") == 200,
            self.start_timeout,
            self._check_alive,
        )
        _wait_until(
            "namespace default",
            lambda: self._get_status("/api/v1/namespaces/default") == 200,
            DEFAULT_NAMESPACE_TIMEOUT,
            self._check_alive,
        )
        self.write_kubeconfig(self.kubeconfig)
        self._write_pids()

    def _spawn(self, name: str, args: list[str], attempt: int) -> None:
        self._children[name] = Child.start(
            [str(self.bin_dir / name), *args],
            log=self.log_file(name),
            cwd=self.state_dir,
            isolation="session" if self.detached else "group",
            header=f"=== attempt {attempt} {time.strftime('%Y-%m-%dT%H:%M:%S')} ===",
        )

    def _check_alive(self) -> None:
        for name, child in self._children.items():
            code = child.returncode
            if code is None:
                continue
            tail = _tail(self.log_file(name))
            err_cls = _PortInUseError if "address already in use" in tail else ControlPlaneError
            raise err_cls(f"{name} exited with code {code} during start")

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (SIGTERM to the process group, SIGKILL after 20 s).

        Then, unless ``keep_state``, removes the state: the whole temp dir when it was created
        here; for a given ``state_dir`` the data dir, certificates, kubeconfig and pids file
        (the logs stay). Safe to call twice; also works on an instance from :meth:`attach`.
        """
        self._stop_processes()
        if self.keep_state:
            return
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        else:
            for sub in ("etcd-data", "pki"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            for f in (self.kubeconfig, self.pids_file):
                f.unlink(missing_ok=True)

    def _stop_processes(self) -> None:
        for name in ("kube-apiserver", "etcd"):
            child = self._children.pop(name, None)
            if child is None:
                continue
            if child.proc is None and not pid_is(child.pid, str(self.bin_dir / name)):
                continue  # attached, and the pid is gone or recycled
            child.stop(STOP_GRACE)

    def restart_apiserver(self, down: float) -> None:
        """SIGKILL the kube-apiserver, wait ``down`` s, start it again with the same command line
        (same port, certificates and etcd: the data survives) and wait for ``/readyz`` (60 s).
        For a control plane started by this instance."""
        old = self._children["kube-apiserver"]
        argv = [a.decode() for a in Path(f"/proc/{old.pid}/cmdline").read_bytes().split(b"\0")[:-1]]
        old.kill()
        time.sleep(down)
        self._children["kube-apiserver"] = Child.start(
            argv,
            log=self.log_file("kube-apiserver"),
            cwd=self.state_dir,
            isolation="session" if self.detached else "group",
            header=f"=== restart {time.strftime('%Y-%m-%dT%H:%M:%S')} ===",
        )
        _wait_until("kube-apiserver /readyz", lambda: self._get_status("/readyz") == 200, 60.0, self._check_alive)

    # state file / attach -----------------------------------------------------
    def _write_pids(self) -> None:
        info = {
            "pids": self.pids,
            "server": self.server,
            "etcd_url": self.etcd_url,
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.bin_dir),
            "started_at": time.time(),
        }
        tmp = self.pids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self.pids_file)

    @classmethod
    def attach(cls, state_dir: str | os.PathLike[str]) -> ControlPlane:
        """Return an instance for a control plane started by ``up`` (reads ``state_dir/pids``).

        Raises :class:`ControlPlaneError` if there is no (readable) pids file. The processes are
        not checked: use :meth:`running` / :meth:`healthy`.
        """
        state = Path(state_dir).expanduser().resolve()
        try:
            info = json.loads((state / "pids").read_text())
        except (OSError, ValueError) as e:
            raise ControlPlaneError(f"no control plane state in {state}: {e}") from e
        self = cls.__new__(cls)
        self.bin_dir = Path(info["bin_dir"])
        self._own_state_dir = False
        self.state_dir = state
        self.keep_state = False
        self.detached = True
        self.start_timeout = APISERVER_READY_TIMEOUT
        self.server = info["server"]
        self.etcd_url = info["etcd_url"]
        self.ca_pem = self.ca_file.read_text() if self.ca_file.exists() else ""
        self._children = {k: Child(int(v), self.log_file(k), group=True) for k, v in info["pids"].items()}
        self._client_ca = None
        return self

    def running(self) -> dict[str, bool]:
        """Map process name -> whether its recorded pid is alive and still that binary."""
        return {n: pid_is(c.pid, str(self.bin_dir / n)) for n, c in self._children.items()}

    @property
    def pids(self) -> dict[str, int]:
        """Map process name -> pid."""
        return {name: child.pid for name, child in self._children.items()}

    def healthy(self) -> bool:
        """True if both processes run and ``/readyz`` answers 200 to the admin identity."""
        run = self.running()
        return bool(run) and all(run.values()) and self._get_status("/readyz") == 200

    # certificates / kubeconfig --------------------------------------------------
    def _write_pki(self) -> None:
        pki = self.pki_dir
        pki.mkdir(mode=0o700, parents=True, exist_ok=True)
        serving_ca = TinyCA("oec-local-serving-ca")
        crt, key = serving_ca.issue("localhost", server=True, dns_names=("localhost",), ips=("127.0.0.1",))
        files: dict[str, bytes] = {
            "serving-ca.crt": pem_cert(serving_ca.cert),
            "apiserver.crt": crt,
            "apiserver.key": key,
        }
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files["sa-signer.key"] = pem_key(sa_key)
        files["sa-signer.pub"] = pem_public_key(sa_key)
        client_ca = TinyCA("oec-local-client-ca")
        files["client-cert-auth-ca.crt"] = pem_cert(client_ca.cert)
        files["admin.crt"], files["admin.key"] = client_ca.issue("admin", organizations=("system:masters",))
        for name, data in files.items():
            path = pki / name
            path.write_bytes(data)
            path.chmod(0o600 if name.endswith(".key") else 0o644)
        self.ca_pem = files["serving-ca.crt"].decode()
        self._client_ca = client_ca

    def issue_client_cert(self, user: str, groups: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
        """Return ``(cert_pem, key_pem)`` of a client certificate for ``user`` in ``groups``.

        Only for a control plane started by this instance (the client CA key is not stored).
        """
        ca = self._client_ca
        if ca is None:
            raise ControlPlaneError("client CA key not available (not started by this instance)")
        return ca.issue(user, organizations=groups)

    def write_kubeconfig(self, path: str | os.PathLike[str], *, token: str | None = None) -> Path:
        """Write a kubeconfig (cluster/user/context ``oec-local``) to ``path`` and return it.

        Without ``token`` the user is the admin client certificate (``system:masters``); with
        ``token`` it is that bearer token (e.g. from :meth:`mint_token`), so RBAC applies.
        """
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        if token is None:
            user = (
                f"    client-certificate-data: {b64(self.admin_cert_file.read_bytes())}\n"
                f"    client-key-data: {b64(self.admin_key_file.read_bytes())}\n"
            )
        else:
            user = f"    token: {json.dumps(token)}\n"
        text = (
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            f"- name: {CONTEXT_NAME}\n"
            "  cluster:\n"
            f"    server: {self.server}\n"
            f"    certificate-authority-data: {b64(self.ca_file.read_bytes())}\n"
            "users:\n"
            f"- name: {CONTEXT_NAME}\n"
            "  user:\n"
            f"{user}"
            "contexts:\n"
            f"- name: {CONTEXT_NAME}\n"
            "  context:\n"
            f"    cluster: {CONTEXT_NAME}\n"
            f"    user: {CONTEXT_NAME}\n"
            f"current-context: {CONTEXT_NAME}\n"
        )
        out = Path(path)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o600)
        tmp.replace(out)
        return out

    # HTTP ----------------------------------------------------------------------
    def _ssl_context(self, admin: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem or self.ca_file.read_text())
        if admin:
            ctx.load_cert_chain(self.admin_cert_file, self.admin_key_file)
        return ctx

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, Any] | str]:
        """Send one API request as admin (or as ``token``'s identity); return ``(status, body)``.

        ``body`` is sent as JSON; the response body is parsed JSON when possible, else text.
        HTTP error statuses are returned, not raised; connection errors raise ``OSError``.
        """
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        ctx = self._ssl_context(admin=token is None)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:  # noqa: S310
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def _get_status(self, path: str) -> int:
        try:
            return self.request("GET", path, timeout=5.0)[0]
        except (OSError, ssl.SSLError):
            return 0

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2.0) as resp:  # noqa: S310
                if resp.status != 200:
                    return False
                health: object = json.loads(resp.read()).get("health")
                return health == "true"
        except (OSError, ValueError):
            return False

    def version(self) -> dict[str, Any]:
        """Return the apiserver's ``/version`` document (``gitVersion``, ``major``, ``minor``, ...)."""
        status, body = self.request("GET", "/version")
        if status != 200 or not isinstance(body, dict):
            raise ControlPlaneError(f"/version: HTTP {status}: {body}")
        return body

    def mint_token(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """Return a bearer token for ServiceAccount ``namespace/service_account`` (TokenRequest).

        ``seconds`` is the requested lifetime (>= 600). The ServiceAccount must exist (no
        controller creates ``default``). Raises ``ValueError`` for ``seconds < 600`` and
        :class:`ControlPlaneError` if the API refuses.
        """
        if seconds < 600:
            raise ValueError("TokenRequest expirationSeconds must be >= 600")
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": int(seconds)},
        }
        status, resp = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", body
        )
        if status != 201 or not isinstance(resp, dict):
            raise ControlPlaneError(f"TokenRequest for {namespace}/{service_account}: HTTP {status}: {resp}")
        return str(resp["status"]["token"])

    def env(self) -> dict[str, str]:
        """Environment variables for child processes: ``{"KUBECONFIG": <admin kubeconfig>}``."""
        return {"KUBECONFIG": str(self.kubeconfig)}
