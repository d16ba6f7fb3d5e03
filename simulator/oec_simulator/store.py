"""In-memory OEC.sh state with a lazy lifecycle (docs/oec-api.md §2, §9, §10, §11; §1 rows 10-23, 28, 31-38).

Pure logic, no HTTP. State advances on access: every public method first calls :meth:`Store.tick`,
which completes tasks whose end time (per the injected clock) has passed and applies their effect on
the environment (deploy → ``running``/failed status, destroy → gone, start/restart/quick-update →
``running``, stop → ``stopped``, backup → unchanged, restore → ``running``; a successful
deploy/start/restart/quick-update also makes the requested sizes the running ones), verifies
custom domains whose time has come and records OEC's own scheduled backups. Timestamps of those
effects are the task's end time, not the time of the access. Errors are raised as
:class:`~oec_simulator.errors.ApiError` with the contract's codes. Visibility of resources for
project-scoped keys is the caller's job.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import backups as bk
from . import envsettings
from .clock import Clock, iso
from .config import ProjectConfig, SimulatorConfig
from .errors import ApiError, not_found

#: Every status value the API can emit or accept in ``?status=`` (§10, §1 rows 10-11).
SEED_STATUSES = (
    "pending",
    "deploying",
    "running",
    "stopped",
    "paused",
    "failed",
    "error",
    "destroying",
    "deleted",
    "cloning",
)
#: MCP's narrower filter enum (§1 row 11 variant).
MCP_FILTER_STATUSES = ("pending", "cloning", "deploying", "running", "stopped", "paused", "error")
#: Statuses the older API left out of the list (§1 row 13 variant).
INACTIVE_STATUSES = frozenset({"stopped", "paused", "error", "failed"})
#: Statuses that block deleting a project (§1 row 20).
ACTIVE_STATUSES = frozenset({"running", "deploying", "pending"})

#: Steps per task type (§9.3 ``current_step``/``total_steps``).
TASK_STEPS: dict[str, tuple[str, ...]] = {
    "deploy": ("prepare", "pull", "build", "migrate", "start", "healthcheck"),
    "destroy": ("stop", "drop_database", "remove_files", "cleanup"),
    "start": ("start", "healthcheck"),
    "stop": ("stop",),
    "restart": ("stop", "start", "healthcheck"),
    "quick_update": ("pull", "update", "restart", "healthcheck"),
    "backup": ("prepare", "dump_database", "archive_filestore", "upload"),
    "restore": ("safety_backup", "download", "restore_database", "restore_filestore", "restart", "healthcheck"),
}
#: Tasks whose completion applies the requested sizes (§11.2: "takes effect on the next deploy or
#: restart"); a stop leaves them pending.
APPLIES_SIZES = frozenset({"deploy", "start", "restart", "quick_update"})
#: States from which each action may start (§1 row 19); destroy is allowed from any state.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "deploy": frozenset({"pending", "running", "stopped", "error", "failed"}),
    "start": frozenset({"stopped"}),
    "stop": frozenset({"running", "paused"}),
    "restart": frozenset({"running"}),
    "quick_update": frozenset({"running"}),
}
#: Default sizes per environment_type: (cpu_cores, ram_mb, disk_gb).
SIZES: dict[str, tuple[float, int, int]] = {
    "development": (1.0, 2048, 10),
    "staging": (2.0, 4096, 20),
    "production": (4.0, 8192, 50),
}
#: Log lines and task ``error_message`` of a failed deploy unless configured otherwise.
DEFAULT_FAIL_LOG = (
    "ERROR: Could not find a version that satisfies the requirement",
    "ERROR: pip install exited with status 1",
)
DEFAULT_FAIL_MESSAGE = "Build failed: pip could not install the requirements of the addons (simulated failure)."
#: Log line and ``error_message`` of a failed backup unless configured otherwise.
DEFAULT_BACKUP_FAIL_LOG = ("ERROR: pg_dump: error: connection to server was lost",)
DEFAULT_BACKUP_FAIL_MESSAGE = "Backup failed: pg_dump lost its connection to the database (simulated failure)."
DEFAULT_RESTORE_FAIL_LOG = ("ERROR: pg_restore: could not write to the database: disk full",)
DEFAULT_RESTORE_FAIL_MESSAGE = "Restore failed: pg_restore could not write to the database (simulated failure)."
#: States in which an environment can be restored (§11.5); a backup also needs a deployed one.
RESTORABLE_STATES = frozenset({"running", "stopped", "failed", "error"})
_STEP_TEXT = {
    "prepare": "Preparing deployment on server",
    "pull": "Pulling branch '{branch}' from git",
    "build": "Building Odoo {odoo_version} image",
    "migrate": "Running database migrations",
    "start": "Starting containers",
    "healthcheck": "Waiting for HTTP health check",
    "stop": "Stopping containers",
    "drop_database": "Dropping database",
    "remove_files": "Removing filestore and addons",
    "cleanup": "Releasing resources",
    "update": "Updating modules",
    "restart": "Restarting containers",
    "dump_database": "Dumping the database",
    "archive_filestore": "Archiving the filestore",
    "upload": "Uploading the backup to storage",
    "safety_backup": "Taking a safety backup of the current data",
    "download": "Downloading the backup",
    "restore_database": "Restoring the database",
    "restore_filestore": "Restoring the filestore",
}


@dataclass
class Project:
    """A project (§9.5). ``deleted`` projects answer 404."""

    id: str
    name: str
    odoo_version: str | None
    default_branch: str | None
    server_id: str | None
    git_repo_url: str | None
    git_provider: str | None
    created_at: float
    deleted: bool = False


@dataclass
class Task:
    """A task (§9.3). Times are epoch seconds; the phase at a time ``t`` follows from them.

    ``queued`` until ``start_at``, ``running`` until ``end_at``, then ``completed`` (or ``failed`` if
    ``fail_step`` is set; ``fail_lines`` are then logged at the failure); ``cancelled_at`` overrides.
    ``lines`` are ``(time, text)`` log lines, visible once their time has come. What the task was
    asked (admin view only): ``update_modules`` of a deploy, ``mode``/``modules`` of a quick-update;
    ``applied_sizes``: the sizes its completion applied (``None`` = none).
    """

    id: str
    type: str
    environment_id: str
    created_at: float
    start_at: float
    end_at: float
    steps: tuple[str, ...]
    step_seconds: float
    seq: int
    fail_step: int | None = None
    fail_lines: tuple[str, ...] = DEFAULT_FAIL_LOG
    error_message: str | None = None
    cancelled_at: float | None = None
    finalized: bool = False
    lines: list[tuple[float, str]] = field(default_factory=list)
    update_modules: list[str] | None = None
    mode: str | None = None
    modules: list[str] | None = None
    applied_sizes: dict[str, float | int] | None = None

    def status_at(self, now: float) -> str:
        """Task status at ``now``: queued, running, completed, failed or cancelled (§9.3)."""
        if self.cancelled_at is not None:
            return "cancelled"
        if now < self.start_at:
            return "queued"
        if now < self.end_at:
            return "running"
        return "failed" if self.fail_step is not None else "completed"

    def is_active(self, now: float) -> bool:
        """True while queued or running."""
        return self.status_at(now) in ("queued", "running")


@dataclass(slots=True)  # slots: attribute reads stay fast in tick() however many fields it has
class Environment:
    """An environment (§2, §9.1). ``deleted`` ones answer 404 on every ``/environments/{id}`` route.

    ``cpu_cores``/``ram_mb``/``disk_gb`` are the requested sizes (PATCH), ``applied_*`` the ones the
    environment runs with (set when a deploy, start, restart or quick-update completes, §11.2).
    ``domain_set_at``: when the custom domain was set, while its automatic verification is pending
    (``None``: verified, none, or verification switched off through the admin API).

    Simulator-only: ``fail_next_deploy`` (+ ``fail_log`` lines and ``fail_message``, used once by the
    next deploy) and ``destroy_seconds`` (this environment's destroy duration, s; None = config's).
    """

    id: str
    project_id: str
    name: str
    status: str
    url: str
    odoo_version: str | None
    branch: str
    cpu_cores: float
    ram_mb: int
    disk_gb: int
    server_id: str | None
    created_at: float
    updated_at: float
    seq: int
    deleted: bool = False
    deleted_at: float | None = None
    active_task_id: str | None = None
    task_ids: list[str] = field(default_factory=list)
    fail_next_deploy: bool = False
    fail_log: list[str] | None = None
    fail_message: str | None = None
    destroy_seconds: float | None = None
    ever_deployed: bool = False
    applied_cpu_cores: float = 0.0
    applied_ram_mb: int = 0
    applied_disk_gb: int = 0
    custom_domain: str | None = None
    custom_domain_verified: bool = False
    domain_set_at: float | None = None
    fail_next_backup: bool = False
    backup_fail_message: str | None = None
    next_scheduled_backup: float | None = None


def slugify(name: str) -> str:
    """Lower-case DNS label from an environment name (max 40 chars, ``env`` if nothing is left)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return slug or "env"


class Store:
    """The simulator's state: projects, environments, tasks and their log lines.

    ``config`` is read live (durations, variants, quota, ``fail_next_deploys``); ``clock.now()`` gives
    epoch seconds. Methods return model objects; ``*_view`` methods give the JSON shapes of §9.
    """

    def __init__(self, config: SimulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.projects: dict[str, Project] = {}
        self.environments: dict[str, Environment] = {}
        self.tasks: dict[str, Task] = {}
        self.backups: dict[str, bk.Backup] = {}
        #: Accepted ``POST .../backups`` and ``POST /backups/{id}/restore`` per environment (admin counts).
        self.backup_creates: dict[str, int] = {}
        self.restores: dict[str, int] = {}
        self._seq = 0
        for project in config.projects:
            self.add_project(project)

    # ------------------------------------------------------------------ housekeeping
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def reset(self) -> None:
        """Drop every environment and task; projects stay (``POST /_sim/reset``)."""
        self.environments.clear()
        self.tasks.clear()
        self.backups.clear()
        self.backup_creates.clear()
        self.restores.clear()

    def tick(self) -> None:
        """Complete every task whose end time has passed and apply its effect, verify custom
        domains whose verification time has come, and record OEC's own scheduled backups that fell
        due (lazy lifecycle)."""
        now = self.clock.now()
        for env in self.environments.values():
            if env.domain_set_at is not None:  # a custom domain waits for its verification
                due = envsettings.verification_due(self.config, env)
                if due is not None and now >= due:
                    env.custom_domain_verified, env.domain_set_at = True, None
                    env.updated_at = max(env.updated_at, due)
            if env.next_scheduled_backup is not None and now >= env.next_scheduled_backup:
                self._scheduled_backups(env, now)
            if env.active_task_id is None:
                continue
            task = self.tasks[env.active_task_id]
            if now >= task.end_at:
                self._finalize(env, task)

    def _finalize(self, env: Environment, task: Task) -> None:
        task.finalized = True
        env.active_task_id = None
        at = task.end_at
        if task.type == "deploy":
            if task.fail_step is not None:
                env.status = self.config.failed_deploy_status
            else:
                env.status = "running"
                env.ever_deployed = True
                if env.next_scheduled_backup is None:
                    env.next_scheduled_backup = at + bk.DAY
        elif task.type == "backup":
            pass  # a backup leaves the environment as it was
        elif task.type == "restore":
            if task.fail_step is None:
                env.status = "running"
        elif task.type == "destroy":
            env.status = "deleted"
            env.deleted = True
            env.deleted_at = at
        elif task.type == "stop":
            env.status = "stopped"
        else:  # start, restart, quick_update
            env.status = "running"
        if task.type in APPLIES_SIZES and task.fail_step is None:
            task.applied_sizes = envsettings.apply_sizes(env)
        env.updated_at = at

    # ------------------------------------------------------------------ projects
    def add_project(self, spec: ProjectConfig) -> Project:
        """Create (or replace) a project from a :class:`ProjectConfig`."""
        server = spec.resolved_server_id()
        project = Project(
            id=str(spec.id),
            name=spec.name,
            odoo_version=spec.odoo_version,
            default_branch=spec.default_branch,
            server_id=str(server) if server else None,
            git_repo_url=spec.git_repo_url,
            git_provider=spec.git_provider,
            created_at=self.clock.now(),
        )
        self.projects[project.id] = project
        return project

    def get_project(self, project_id: str) -> Project:
        """The project, or 404 ``not_found`` if unknown or deleted."""
        project = self.projects.get(project_id)
        if project is None or project.deleted:
            raise not_found()
        return project

    def list_projects(self) -> list[Project]:
        """Active projects, oldest first."""
        return [p for p in self.projects.values() if not p.deleted]

    def update_project(self, project_id: str, changes: dict[str, Any]) -> Project:
        """Apply ``name``/``default_branch``/``odoo_version``/``git_repo_url``/``git_provider`` changes."""
        project = self.get_project(project_id)
        for name, value in changes.items():
            setattr(project, name, value)
        return project

    def delete_project(self, project_id: str) -> None:
        """Delete a project; 409 ``project_has_active_environments`` while one is running/deploying/pending."""
        self.tick()
        project = self.get_project(project_id)
        busy = [
            e.id
            for e in self.environments.values()
            if e.project_id == project.id and not e.deleted and e.status in ACTIVE_STATUSES
        ]
        if busy:
            raise ApiError(
                409,
                "project_has_active_environments",
                "The project still has running, deploying or pending environments.",
            )
        project.deleted = True

    def environment_count(self, project_id: str) -> int:
        """Number of non-deleted environments of a project."""
        self.tick()
        return sum(1 for e in self.environments.values() if e.project_id == project_id and not e.deleted)

    def project_view(self, project: Project) -> dict[str, Any]:
        """Project object (§9.5)."""
        return {
            "id": project.id,
            "name": project.name,
            "odoo_version": project.odoo_version,
            "git_repo_url": project.git_repo_url,
            "git_provider": project.git_provider,
            "default_branch": project.default_branch,
            "environment_count": self.environment_count(project.id),
            "server_id": project.server_id,
            "created_at": iso(project.created_at),
        }

    # ------------------------------------------------------------------ environments
    def create_environment(
        self,
        project_id: str,
        *,
        name: str,
        branch: str | None = None,
        environment_type: str = "development",
        cpu_cores: float | None = None,
        ram_mb: int | None = None,
        disk_gb: int | None = None,
        server_id: str | None = None,
        domain: str | None = None,
    ) -> Environment:
        """Create an environment (§11.2 POST; §1 rows 12, 15, 16, 34, 35).

        With a server (``server_id`` or the project's): status ``deploying`` and a queued deploy task.
        Without: status ``pending``, no task. The sizes (given or by type) are requested and applied
        at once; ``domain`` (non-empty) is set unverified. Raises 404, 409 ``name_conflict``
        (variant), ``quota_exceeded`` (status per ``config.quota_status``; sizes above the plan: 422),
        409 ``domain_in_use``.
        """
        self.tick()
        project = self.get_project(project_id)
        live = [e for e in self.environments.values() if not e.deleted]
        if self.config.max_environments is not None and len(live) >= self.config.max_environments:
            raise ApiError(
                self.config.quota_status,
                "quota_exceeded",
                f"Environment quota exceeded: the organization may have at most "
                f"{self.config.max_environments} environments.",
                extras={"limit": self.config.max_environments},
            )
        if self.config.name_uniqueness and any(e.project_id == project.id and e.name == name for e in live):
            raise ApiError(409, "name_conflict", "An environment with this name already exists in the project.")
        envsettings.check_plan_limits(self.config, {"cpu_cores": cpu_cores, "ram_mb": ram_mb, "disk_gb": disk_gb})
        if domain:
            envsettings.check_domain_free(live, "", domain)
        now = self.clock.now()
        env_id = str(uuid.uuid4())
        size = SIZES[environment_type]
        server = server_id or project.server_id
        env = Environment(
            id=env_id,
            project_id=project.id,
            name=name,
            status="pending",
            url=f"https://{slugify(name)}-{env_id[:8]}.apps.oec.sh",
            odoo_version=project.odoo_version,
            branch=branch or project.default_branch or "main",
            cpu_cores=float(cpu_cores if cpu_cores is not None else size[0]),
            ram_mb=ram_mb if ram_mb is not None else size[1],
            disk_gb=disk_gb if disk_gb is not None else size[2],
            server_id=server,
            created_at=now,
            updated_at=now,
            seq=self._next_seq(),
        )
        envsettings.apply_sizes(env)
        if domain:
            envsettings.set_domain(env, domain, now)
        self.environments[env.id] = env
        if server is not None:
            self._queue(env, "deploy", now)
        return env

    def get_environment(self, env_id: str) -> Environment:
        """A visible environment, or 404 ``not_found`` if unknown or gone."""
        self.tick()
        env = self.environments.get(env_id)
        if env is None or env.deleted:
            raise not_found()
        return env

    def list_environments(self, project_id: str, status: str | None = None) -> list[Environment]:
        """Environments of a project, oldest first, never deleted ones (§1 row 13); ``status`` filter."""
        self.tick()
        self.get_project(project_id)
        result = []
        for env in sorted(self.environments.values(), key=lambda e: e.seq):
            if env.project_id != project_id or env.deleted:
                continue
            if self.config.list_hides_inactive and env.status in INACTIVE_STATUSES:
                continue
            if status is not None and env.status != status:
                continue
            result.append(env)
        return result

    def update_environment(
        self,
        env_id: str,
        *,
        name: str | None = None,
        branch: str | None = None,
        domain: str | None = None,
        sizes: dict[str, Any] | None = None,
    ) -> Environment:
        """Store a new ``name``/``branch``/``domain`` (``""`` removes it) and requested ``sizes``
        (``cpu_cores``/``ram_mb``/``disk_gb``, applied by the next deploy, start, restart or
        quick-update), no redeploy, and bump ``updated_at`` (§11.2 PATCH; §1 rows 31-35).

        Checked before anything is stored: 409 ``invalid_state`` while destroying; 409
        ``name_conflict`` with the uniqueness variant; 422 on ``disk_gb`` for a shrink
        (``disk_shrink=refuse``); 422 ``quota_exceeded`` above the plan; 409 ``domain_in_use``.
        """
        env = self.get_environment(env_id)
        sizes = sizes or {}
        if env.status == "destroying":
            raise ApiError(409, "invalid_state", "The environment is being destroyed.")
        envsettings.check_no_shrink(self.config, env, sizes.get("disk_gb"))
        envsettings.check_plan_limits(self.config, sizes)
        if domain:
            envsettings.check_domain_free(self.environments.values(), env.id, domain)
        if name is not None and self.config.name_uniqueness:
            clash = any(
                e.project_id == env.project_id and e.name == name and e.id != env.id and not e.deleted
                for e in self.environments.values()
            )
            if clash:
                raise ApiError(409, "name_conflict", "An environment with this name already exists in the project.")
        if name is not None:
            env.name = name
        if branch is not None:
            env.branch = branch
        now = self.clock.now()
        if domain is not None:
            envsettings.set_domain(env, domain, now)
        envsettings.set_sizes(env, sizes)
        env.updated_at = now
        return env

    # ------------------------------------------------------------------ tasks
    def start_action(
        self,
        env_id: str,
        action: str,
        *,
        update_modules: list[str] | None = None,
        mode: str | None = None,
        modules: list[str] | None = None,
    ) -> Task:
        """Queue ``deploy``/``start``/``stop``/``restart``/``quick_update``/``destroy`` (§11.3, §1 row 19).

        ``update_modules`` (deploy), ``mode`` and ``modules`` (quick-update) are recorded on the
        task (admin view). 409 ``task_in_progress`` (extra ``task_id``) while a task is queued or
        running, otherwise 409 ``invalid_state`` when the current status does not allow the action.
        """
        env = self.get_environment(env_id)
        self._refuse_while_busy(env)
        allowed = ALLOWED_FROM.get(action)
        if allowed is not None and env.status not in allowed:
            raise ApiError(
                409,
                "invalid_state",
                f"Cannot {action.replace('_', '-')} an environment in status '{env.status}'.",
                extras={"status": env.status},
            )
        if action == "deploy" and env.ever_deployed and self.config.auto_backups:
            kind = "pre_deploy" if self.config.backup_enums == "ref" else "pre_upgrade"
            self._record_backup(env, kind, self.clock.now())
        task = self._queue(env, action)
        task.update_modules, task.mode, task.modules = update_modules, mode, modules
        return task

    def _duration(self, env: Environment, task_type: str) -> float:
        if task_type == "deploy":
            return self.config.deploy_seconds
        if task_type == "destroy":
            return env.destroy_seconds if env.destroy_seconds is not None else self.config.destroy_seconds
        if task_type == "backup":
            return self.config.backup_seconds
        if task_type == "restore":
            return self.config.restore_seconds
        return self.config.action_seconds

    def _take_failure(self, env: Environment) -> tuple[tuple[str, ...], str] | None:
        """Consume a planned deploy failure (the environment's first, then ``fail_next_deploys``):
        ``(log lines, error message)``, or ``None`` when the deploy should succeed."""
        config = self.config
        lines: list[str] | None = None
        message: str | None = None
        if env.fail_next_deploy:
            lines, message = env.fail_log, env.fail_message
            env.fail_next_deploy, env.fail_log, env.fail_message = False, None, None
        elif config.fail_next_deploys > 0:
            config.fail_next_deploys = config.fail_next_deploys - 1
        else:
            return None
        lines = lines if lines is not None else config.fail_deploy_log
        message = message or config.fail_deploy_message or DEFAULT_FAIL_MESSAGE
        return (tuple(lines) if lines is not None else DEFAULT_FAIL_LOG), message

    def _take_backup_failure(self, env: Environment) -> tuple[tuple[str, ...], str] | None:
        """Consume a planned backup failure (the environment's, then ``fail_next_backups``):
        ``(log lines, error message)``, or ``None`` when the backup should succeed."""
        message = env.backup_fail_message
        if env.fail_next_backup:
            env.fail_next_backup, env.backup_fail_message = False, None
        elif self.config.fail_next_backups > 0:
            self.config.fail_next_backups = self.config.fail_next_backups - 1
        else:
            return None
        return DEFAULT_BACKUP_FAIL_LOG, message or self.config.fail_backup_message or DEFAULT_BACKUP_FAIL_MESSAGE

    def _take_restore_failure(self) -> tuple[tuple[str, ...], str] | None:
        """Consume a planned restore failure (``fail_next_restores``): ``(log lines, error
        message)``, or ``None`` when the restore should succeed."""
        if self.config.fail_next_restores <= 0:
            return None
        self.config.fail_next_restores = self.config.fail_next_restores - 1
        return DEFAULT_RESTORE_FAIL_LOG, self.config.fail_restore_message or DEFAULT_RESTORE_FAIL_MESSAGE

    @staticmethod
    def _refuse_while_busy(env: Environment) -> None:
        """One task per environment (§11.3): 409 ``task_in_progress`` naming the active task."""
        if env.active_task_id is not None:
            raise ApiError(
                409,
                "task_in_progress",
                "Another task is already queued or running for this environment.",
                extras={"task_id": env.active_task_id},
            )

    def _queue(self, env: Environment, task_type: str, now: float | None = None) -> Task:
        now = self.clock.now() if now is None else now
        duration = self._duration(env, task_type)
        queue_delay = min(0.5, duration * 0.1)
        run = duration - queue_delay
        steps = TASK_STEPS[task_type]
        step_seconds = run / len(steps)
        fail_step: int | None = None
        failure = self._take_failure(env) if task_type == "deploy" else None
        if failure is not None:
            fail_step = steps.index(self.config.fail_deploy_step)
        elif task_type == "backup":
            failure = self._take_backup_failure(env)
            fail_step = steps.index("dump_database") if failure is not None else None
        elif task_type == "restore":
            failure = self._take_restore_failure()
            fail_step = steps.index("restore_database") if failure is not None else None
        start_at = now + queue_delay
        end_at = start_at + (step_seconds * (fail_step + 1) if fail_step is not None else run)
        task = Task(
            id=str(uuid.uuid4()),
            type=task_type,
            environment_id=env.id,
            created_at=now,
            start_at=start_at,
            end_at=end_at,
            steps=steps,
            step_seconds=step_seconds,
            seq=self._next_seq(),
            fail_step=fail_step,
        )
        if failure is not None:
            task.fail_lines, task.error_message = failure
        task.lines = self._script(env, task)
        self.tasks[task.id] = task
        env.task_ids.append(task.id)
        env.active_task_id = task.id
        if task_type == "deploy":
            env.status = "deploying"
            env.updated_at = now
        elif task_type == "destroy":
            env.status = "destroying"
            env.updated_at = now
        return task

    def _script(self, env: Environment, task: Task) -> list[tuple[float, str]]:
        label = task.type.replace("_", "-")
        lines: list[tuple[float, str]] = [
            (task.created_at, f"[queue] {label} task {task.id} queued for environment {env.name!r}")
        ]
        context = {"branch": env.branch, "odoo_version": env.odoo_version or "?"}
        for index, step in enumerate(task.steps):
            at = task.start_at + index * task.step_seconds
            if at > task.end_at:
                break
            lines.append((at, f"[{step}] {_STEP_TEXT[step].format(**context)}"))
            if task.fail_step == index:
                lines.extend((task.end_at, f"[{step}] {text}") for text in task.fail_lines)
                lines.append((task.end_at, f"[done] {label} failed at step '{step}'"))
                return lines
        lines.append((task.end_at, f"[done] {label} completed"))
        return lines

    def get_task(self, task_id: str) -> Task:
        """Any task by id, also after its environment is gone (§11.3); 404 if unknown."""
        self.tick()
        task = self.tasks.get(task_id)
        if task is None:
            raise not_found()
        return task

    def list_tasks(self, env_id: str) -> list[Task]:
        """Tasks of a visible environment, newest first (§1 row 22 variant via config)."""
        env = self.get_environment(env_id)
        tasks = [self.tasks[t] for t in env.task_ids]
        if self.config.deployments_list == "deploy_only":
            tasks = [t for t in tasks if t.type == "deploy"]
        return sorted(tasks, key=lambda t: t.seq, reverse=True)

    def last_deploy(self, env: Environment) -> Task | None:
        """Most recent deploy task of an environment, or ``None``."""
        deploys = [self.tasks[t] for t in env.task_ids if self.tasks[t].type == "deploy"]
        return max(deploys, key=lambda t: t.seq) if deploys else None

    # ------------------------------------------------------------------ views
    def environment_view(self, env: Environment) -> dict[str, Any]:
        """Environment object: the §2/§9.1 fields and the vendor client's ``custom_domain``,
        ``custom_domain_verified``; sizes requested or applied per ``size_view`` (§1 row 32)."""
        return {
            "id": env.id,
            "name": env.name,
            "status": env.status,
            "url": env.url,
            "odoo_version": env.odoo_version,
            "branch": env.branch,
            "last_commit": None,
            **(envsettings.applied_sizes if self.config.size_view == "applied" else envsettings.requested_sizes)(env),
            "project_id": env.project_id,
            "server_id": env.server_id,
            "created_at": iso(env.created_at),
            "updated_at": iso(env.updated_at),
            "custom_domain": env.custom_domain,
            "custom_domain_verified": env.custom_domain_verified,
        }

    def task_view(self, task: Task) -> dict[str, Any]:
        """Task object (§9.3) at the current time."""
        now = self.clock.now()
        status = task.status_at(now)
        total = len(task.steps)
        started_at: float | None = None
        completed_at: float | None = None
        current: str | None = None
        done = 0
        progress = 0
        if status == "cancelled":
            assert task.cancelled_at is not None
            completed_at = task.cancelled_at
            started_at = task.start_at if task.start_at <= task.cancelled_at else None
        elif status == "running":
            started_at = task.start_at
            elapsed = now - task.start_at
            done = min(total - 1, int(elapsed / task.step_seconds)) if task.step_seconds > 0 else 0
            current = task.steps[done]
            run = task.step_seconds * total
            progress = min(99, int(100 * elapsed / run)) if run > 0 else 0
        elif status == "completed":
            started_at, completed_at = task.start_at, task.end_at
            done, progress = total, 100
        elif status == "failed":
            started_at, completed_at = task.start_at, task.end_at
            assert task.fail_step is not None
            done = task.fail_step
            current = task.steps[task.fail_step]
            progress = int(100 * done / total)
        duration = round(completed_at - started_at, 3) if started_at is not None and completed_at is not None else None
        return {
            "id": task.id,
            "type": task.type,
            "status": status,
            "environment_id": task.environment_id,
            "progress_percent": progress,
            "current_step": current,
            "steps_completed": done,
            "total_steps": total,
            "started_at": iso(started_at),
            "completed_at": iso(completed_at),
            "duration_seconds": duration,
            "error_message": task.error_message if status == "failed" else None,
        }

    def deploy_summary(self, task: Task | None) -> dict[str, Any] | None:
        """``last_deploy`` object of the health view: ``{id, status, started_at, completed_at}``."""
        if task is None:
            return None
        view = self.task_view(task)
        return {k: view[k] for k in ("id", "status", "started_at", "completed_at")}

    def health_view(self, env: Environment) -> dict[str, Any]:
        """Health object of ``GET /environments/{id}/status`` (§9.2); ``running`` → all checks true."""
        status = env.status
        container = status in ("running", "error")
        db_ready = status in ("running", "error") or (status == "deploying" and env.ever_deployed)
        return {
            "environment_id": env.id,
            "status": status,
            "url": env.url,
            "container_running": container,
            "db_ready": db_ready,
            "http_ok": status == "running",
            "last_deploy": self.deploy_summary(self.last_deploy(env)),
        }

    def logs_view(self, env: Environment, task_id: str | None, lines: int) -> dict[str, Any]:
        """Task step log (§11.4): ``{task_id|null, log, lines, truncated}``; the last ``lines`` lines.

        ``task_id`` None → the environment's latest task; a task of another environment → 404.
        ``lines`` in the answer is the number of lines returned.
        """
        if task_id is None:
            task = self.tasks[env.task_ids[-1]] if env.task_ids else None
        else:
            task = self.tasks.get(task_id)
            if task is None or task.environment_id != env.id:
                raise not_found()
        if task is None:
            return {"task_id": None, "log": "", "lines": 0, "truncated": False}
        now = self.clock.now()
        cutoff = task.cancelled_at if task.cancelled_at is not None else now
        visible = [f"{iso(at)} {text}" for at, text in task.lines if at <= cutoff]
        if task.cancelled_at is not None:
            visible.append(f"{iso(task.cancelled_at)} [done] task cancelled")
        shown = visible[-lines:]
        return {"task_id": task.id, "log": "\n".join(shown), "lines": len(shown), "truncated": len(visible) > lines}

    # ------------------------------------------------------------------ admin (dashboard-side edits)
    def admin_view(self, env: Environment) -> dict[str, Any]:
        """Environment object plus ``deleted``, ``deleted_at``, ``active_task_id``, ``fail_next_deploy``,
        ``fail_log``, ``fail_message``, ``destroy_seconds``, ``requested`` and ``applied`` (each
        ``{cpu_cores, ram_mb, disk_gb}``: asked for vs running with), ``sizes_pending`` (they differ)
        and ``domain_verify_at`` (ISO time the custom domain verifies by itself, or null)."""
        requested, applied = envsettings.requested_sizes(env), envsettings.applied_sizes(env)
        return {
            **self.environment_view(env),
            "requested": requested,
            "applied": applied,
            "sizes_pending": requested != applied,
            "domain_verify_at": iso(envsettings.verification_due(self.config, env)),
            "deleted": env.deleted,
            "deleted_at": iso(env.deleted_at),
            "active_task_id": env.active_task_id,
            "fail_next_deploy": env.fail_next_deploy,
            "fail_log": env.fail_log,
            "fail_message": env.fail_message,
            "destroy_seconds": env.destroy_seconds,
            "fail_next_backup": env.fail_next_backup,
            "backup_fail_message": env.backup_fail_message,
        }

    def admin_tasks(self, env_id: str) -> list[dict[str, Any]]:
        """Every task of an environment (gone ones included), newest first: the §9.3 object plus
        what it was asked (``update_modules``, ``mode``, ``modules``) and ``applied_sizes``.
        404 ``not_found`` for an unknown id."""
        self.tick()
        env = self.environments.get(env_id)
        if env is None:
            raise not_found()
        tasks = sorted((self.tasks[t] for t in env.task_ids), key=lambda t: t.seq, reverse=True)
        return [
            {
                **self.task_view(task),
                "update_modules": task.update_modules,
                "mode": task.mode,
                "modules": task.modules,
                "applied_sizes": task.applied_sizes,
            }
            for task in tasks
        ]

    def all_environments(self) -> list[Environment]:
        """Every environment ever created, gone ones included, oldest first."""
        self.tick()
        return sorted(self.environments.values(), key=lambda e: e.seq)

    def admin_update(self, env_id: str, changes: dict[str, Any]) -> Environment:
        """Set ``name``/``branch``/``status``/``fail_next_deploy``/``domain``/``cpu_cores``/``ram_mb``/
        ``disk_gb``/``custom_domain_verified`` directly (edits in the OEC dashboard), and the
        simulator-only ``fail_log``, ``fail_message``, ``destroy_seconds`` (null = config's),
        ``fail_next_backup``, ``backup_fail_message`` (also sets ``fail_next_backup``) and
        ``apply_sizes`` (true: the requested sizes run at once, as after a restart).

        Sizes are requested like a PATCH (no shrink or plan check); a new ``domain`` starts
        unverified (409 ``domain_in_use`` if another environment has it);
        ``custom_domain_verified: false`` also stops the automatic verification (a DNS record
        removed). Setting ``status`` does not touch an active task (its completion still applies its
        effect). Giving ``fail_log`` or ``fail_message`` also sets ``fail_next_deploy``.
        """
        env = self.get_environment(env_id)
        now = self.clock.now()
        if changes.get("domain"):
            envsettings.check_domain_free(self.environments.values(), env.id, changes["domain"])
        if changes.get("domain") is not None:
            envsettings.set_domain(env, changes["domain"], now)
        envsettings.set_sizes(env, changes)
        if changes.get("apply_sizes"):
            envsettings.apply_sizes(env)
        if changes.get("custom_domain_verified") is not None and env.custom_domain is not None:
            env.custom_domain_verified = bool(changes["custom_domain_verified"])
            env.domain_set_at = None
        for name in ("name", "branch", "status", "fail_next_deploy", "fail_next_backup"):
            if name in changes and changes[name] is not None:
                setattr(env, name, changes[name])
        for name in ("fail_log", "fail_message", "destroy_seconds", "backup_fail_message"):
            if name in changes:
                setattr(env, name, changes[name])
        if changes.get("backup_fail_message") is not None:
            env.fail_next_backup = True
        if changes.get("fail_log") is not None or changes.get("fail_message") is not None:
            env.fail_next_deploy = True
        if {"name", "branch", "status", "domain", "cpu_cores", "ram_mb", "disk_gb", "custom_domain_verified"} & set(
            changes
        ):
            env.updated_at = now
        return env

    def admin_remove(self, env_id: str) -> Environment:
        """Make an environment gone at once (deleted outside Kubernetes); its active task is cancelled."""
        env = self.get_environment(env_id)
        now = self.clock.now()
        if env.active_task_id is not None:
            task = self.tasks[env.active_task_id]
            task.cancelled_at = now
            task.finalized = True
            env.active_task_id = None
            for backup in self.backups.values():
                if backup.task_id == task.id:
                    backup.cancelled_at = now
        env.status = "deleted"
        env.deleted = True
        env.deleted_at = now
        env.updated_at = now
        return env

    # ------------------------------------------------------------------ backups (§11.5, §1 row 28)
    def _record_backup(
        self,
        env: Environment,
        backup_type: str,
        at: float,
        *,
        task: Task | None = None,
        end_at: float | None = None,
        retention_type: str | None = None,
        include_filestore: bool = True,
        notes: str | None = None,
    ) -> bk.Backup:
        """Store a backup record created at ``at``; with ``task`` it runs as that task (its times,
        failure), else it runs from ``at`` to ``end_at`` (default: complete at ``at``)."""
        backup = bk.Backup(
            id=str(uuid.uuid4()),
            environment_id=env.id,
            project_id=env.project_id,
            backup_type=backup_type,
            retention_type=retention_type or bk.AUTO_RETENTION.get(backup_type, "monthly"),
            include_filestore=include_filestore,
            notes=notes,
            created_at=at,
            start_at=task.start_at if task is not None else at,
            end_at=task.end_at if task is not None else (at if end_at is None else end_at),
            seq=self._next_seq(),
            task_id=task.id if task is not None else None,
        )
        if task is not None and task.fail_step is not None:
            backup.failed, backup.error_message = True, task.error_message
        self.backups[backup.id] = backup
        return backup

    def _scheduled_backups(self, env: Environment, now: float) -> None:
        """Record OEC's own daily ``scheduled`` backups due by ``now`` (the last 7 at most after a
        long jump of the clock; none while ``auto_backups`` is off or the environment is gone or
        not running/stopped)."""
        due = env.next_scheduled_backup
        assert due is not None
        times = []
        while due <= now:
            times.append(due)
            due += bk.DAY
        env.next_scheduled_backup = due
        if not self.config.auto_backups or env.deleted or env.status not in ("running", "stopped"):
            return
        for at in times[-7:]:
            self._record_backup(env, "scheduled", at, end_at=at + self.config.backup_seconds)

    def create_backup(
        self, env_id: str, *, include_filestore: bool, retention_type: str, notes: str | None
    ) -> bk.Backup:
        """A manual backup, run as a ``backup`` task (one task per environment).

        409 ``backup_in_progress`` (extras ``task_id``, ``backup_id``) while a backup runs, 409
        ``task_in_progress`` (``task_id``) while another task runs, 409 ``invalid_state`` for an
        environment never deployed or being destroyed; 404 once gone.
        """
        env = self.get_environment(env_id)
        if env.active_task_id is not None:
            active = self.tasks[env.active_task_id]
            if active.type == "backup":
                running = next((b.id for b in self.backups.values() if b.task_id == active.id), None)
                raise ApiError(
                    409,
                    "backup_in_progress",
                    "A backup of this environment is already running.",
                    extras={"task_id": active.id, "backup_id": running},
                )
        self._refuse_while_busy(env)
        if not env.ever_deployed or env.status in ("pending", "destroying"):
            raise ApiError(
                409, "invalid_state", f"Cannot back up an environment in status '{env.status}'.",
                extras={"status": env.status},
            )
        task = self._queue(env, "backup")
        self.backup_creates[env.id] = self.backup_creates.get(env.id, 0) + 1
        return self._record_backup(
            env, "manual", task.created_at, task=task, retention_type=retention_type,
            include_filestore=include_filestore, notes=notes,
        )

    def backups_of(self, env_id: str) -> Environment:
        """The environment whose backups are asked for, gone ones included (§11.5: readable after
        deletion); 404 ``not_found`` for an unknown id."""
        self.tick()
        env = self.environments.get(env_id)
        if env is None:
            raise not_found()
        return env

    def list_backups(
        self, env_id: str, *, status: str | None = None, backup_type: str | None = None
    ) -> list[bk.Backup]:
        """Visible backups of an environment (also after its deletion), newest first, filtered by
        API ``status`` and ``backup_type``."""
        env = self.backups_of(env_id)
        now = self.clock.now()
        result = []
        for backup in sorted(self.backups.values(), key=lambda b: b.seq, reverse=True):
            if backup.environment_id != env.id or not bk.visible(backup, now, self.config):
                continue
            if status is not None and bk.status_name(backup.phase_at(now), self.config.backup_enums) != status:
                continue
            if backup_type is not None and backup.backup_type != backup_type:
                continue
            result.append(backup)
        return result

    def get_backup(self, backup_id: str) -> bk.Backup:
        """A visible backup by id, also after its environment is gone; 404 otherwise."""
        self.tick()
        backup = self.backups.get(backup_id)
        if backup is None or not bk.visible(backup, self.clock.now(), self.config):
            raise not_found()
        return backup

    def restore_backup(self, backup_id: str) -> Task:
        """Restore a completed backup into its own environment: a ``restore`` task whose first step
        takes a ``pre_restore`` safety backup (§11.5).

        400 ``Backup is not in COMPLETED status`` (plain ``detail``) for a backup not completed; 409
        ``invalid_state`` when its environment is gone or in a state that cannot be restored; 409
        ``task_in_progress`` (``task_id``) while a task runs.
        """
        backup = self.get_backup(backup_id)
        now = self.clock.now()
        if backup.phase_at(now) != "completed":
            raise ApiError(400, "invalid_state", "Backup is not in COMPLETED status", plain=True)
        env = self.environments[backup.environment_id]
        if env.deleted:
            raise ApiError(409, "invalid_state", "The environment of this backup no longer exists.",
                           extras={"status": "deleted"})
        self._refuse_while_busy(env)
        if env.status not in RESTORABLE_STATES:
            raise ApiError(409, "invalid_state", f"Cannot restore an environment in status '{env.status}'.",
                           extras={"status": env.status})
        task = self._queue(env, "restore")
        safety = self._record_backup(env, "pre_restore", task.created_at, end_at=task.start_at + task.step_seconds)
        safety.start_at, safety.task_id = task.start_at, task.id
        backup.restore_count += 1
        self.restores[env.id] = self.restores.get(env.id, 0) + 1
        return task

    def safety_backup_of(self, task_id: str) -> bk.Backup | None:
        """The ``pre_restore`` backup a restore task took, if any."""
        return next((b for b in self.backups.values() if b.task_id == task_id and b.backup_type == "pre_restore"), None)

    def admin_backups(self, env_id: str) -> dict[str, Any]:
        """Every backup of an environment (expired ones included), newest first, as the API shows
        it plus ``phase`` (the simulator's), ``include_filestore``, ``restores``; and ``counts``:
        ``creates`` (accepted manual POSTs), ``restores`` (accepted restores), ``by_type``, ``by_status``."""
        env = self.backups_of(env_id)
        now = self.clock.now()
        records = sorted((b for b in self.backups.values() if b.environment_id == env.id),
                         key=lambda b: b.seq, reverse=True)
        views = [
            {**bk.backup_view(b, now, self.config), "phase": b.phase_at(now),
             "include_filestore": b.include_filestore, "restores": b.restore_count}
            for b in records
        ]
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for view in views:
            by_type[view["backup_type"]] = by_type.get(view["backup_type"], 0) + 1
            by_status[view["phase"]] = by_status.get(view["phase"], 0) + 1
        counts = {"creates": self.backup_creates.get(env.id, 0), "restores": self.restores.get(env.id, 0),
                  "by_type": by_type, "by_status": by_status}
        return {"environment_id": env.id, "backups": views, "counts": counts}

    def admin_finish_backup(self, backup_id: str, *, fail: bool, message: str | None = None) -> bk.Backup:
        """Complete (or fail, with ``message``) a pending or running backup now, and its ``backup``
        task with it. 404 for an unknown id, 409 ``invalid_state`` when it has already finished."""
        self.tick()
        backup = self.backups.get(backup_id)
        if backup is None:
            raise not_found()
        now = self.clock.now()
        if backup.phase_at(now) not in ("pending", "running", "uploading"):
            raise ApiError(409, "invalid_state", f"The backup is already {backup.phase_at(now)}.")
        backup.start_at = min(backup.start_at, now)
        backup.end_at = now
        backup.failed = fail  # completing also overrides a planned failure
        backup.error_message = (
            (message or self.config.fail_backup_message or DEFAULT_BACKUP_FAIL_MESSAGE) if fail else None
        )
        task = self.tasks.get(backup.task_id) if backup.task_id else None
        if task is not None and task.type == "backup":
            task.start_at = min(task.start_at, now)
            task.end_at = now
            step = len(task.steps) - 1 if task.step_seconds <= 0 else min(
                len(task.steps) - 1, int((now - task.start_at) / task.step_seconds))
            task.fail_step, task.error_message = (step, backup.error_message) if fail else (None, None)
            if fail:
                task.fail_lines = DEFAULT_BACKUP_FAIL_LOG
            task.lines = [line for line in task.lines if line[0] <= now]
            label = "backup failed at step '" + task.steps[step] + "'" if fail else "backup completed"
            task.lines.extend([(now, f"[{task.steps[step]}] {text}") for text in (task.fail_lines if fail else ())])
            task.lines.append((now, f"[done] {label}"))
        self.tick()
        return backup
