"""The one writer of status: every status write of the operator (a reconcile's result, an intent
recorded before an action, a deletion's progress) goes through :meth:`StatusWriter.write`, and so
does the operator's memory of what it wrote. One writer per kind: ``StatusWriter(kube)`` writes
``OdooEnvironment`` status, ``StatusWriter(kube, OdooBackupStatus, BACKUP_PLURAL)`` an
``OdooBackup``'s, and so on.

Why a memory: kopf hands a handler the body of the last watch event, which can be older than the
operator's own last write (the write's watch event has not arrived yet). The writer keeps the
status as the apiserver returned it after each successful write and :meth:`StatusWriter.view`
serves it in preference to a body that does not show it yet, so a reconcile never acts on a
status older than its own writes. Once a body shows the written status the memory is dropped and
bodies are the truth again (so a status changed by anyone else is seen at the next reconcile);
after a failed write it is dropped too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar, cast, overload

from oec_operator.kube.client import KubeClient
from oec_operator.models.status import Status, StatusBase
from oec_operator.settings import PLURAL

S = TypeVar("S", bound=StatusBase)


class StatusWriter(Generic[S]):
    """Writes status updates of one kind and remembers the last written status of each object, by UID.

    Args:
        kube: the Kubernetes client.
        model: the kind's status model (default :class:`Status`, ``OdooEnvironment``'s).
        plural: the kind's plural (default ``odooenvironments``).
    """

    @overload
    def __init__(self: StatusWriter[Status], kube: KubeClient) -> None: ...

    @overload
    def __init__(self, kube: KubeClient, model: type[S], plural: str) -> None: ...

    def __init__(self, kube: KubeClient, model: type[S] | None = None, plural: str = PLURAL) -> None:
        self._kube = kube
        self._model: type[S] = model if model is not None else cast(type[S], Status)
        self._plural = plural
        self._written: dict[str, S] = {}

    def view(self, uid: str, body_status: Mapping[str, Any] | None) -> S:
        """The object's current status: the last one this process wrote while the body does not
        show it yet, else the body's."""
        body = self._model.from_body(body_status)
        written = self._written.get(uid)
        if written is None:
            return body
        if written == body:  # the body caught up with the write: it is the truth from now on
            del self._written[uid]
            return body
        return written

    async def write(self, namespace: str, name: str, uid: str, update: S) -> S:
        """Write ``update`` (its fields set; ``None`` removes one) to the object's status.

        Returns:
            The status now stored, as the apiserver returned it.

        Raises:
            KubeError: the write failed; the object is forgotten (its next body is the truth).
        """
        try:
            stored = await self._kube.patch_status(namespace, name, update.patch(), plural=self._plural)
        except Exception:
            self._written.pop(uid, None)
            raise
        status = self._model.from_body(stored.get("status"))
        self._written[uid] = status
        return status

    def forget(self, uid: str) -> None:
        """The object is gone (or its body is to be trusted again)."""
        self._written.pop(uid, None)
