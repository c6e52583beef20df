"""uws_hub configuration: the ``c.UWS`` section of ``jupyterhub_config.py``.

The hub and the uws service read the same file. Every setting is a trait with a help text
(``uws-hub config-help`` prints them); `UWS.validate()` turns a setting that cannot work into a
one-line `ConfigError` naming the setting and the fix, which stops the service (and so the hub)
at start-up.
"""

from __future__ import annotations

import os
import stat
from functools import cached_property
from urllib.parse import urlparse

from traitlets import Bool, Dict, Enum, Float, Integer, List, Set, Unicode, default
from traitlets.config import Configurable

from .errors import ConfigError
from .jobs.launch import check_parameter_mappings
from .jobs.params import Parameter, parse_parameters
from .jobs.types import JobType, Resource, parse_job_types, parse_resources
from .slurm.spec import ClusterSpec, job_cluster, parse_clusters
from .times import PERIODS


def _int_parameter(
    display_name: str, description: str, variable_name: str, *, default: int, lo: int, hi: int
) -> dict:
    """An optional integer launch parameter in the UWS shape, `lo` to `hi` inclusive."""
    return {
        "display_name": display_name,
        "description": description,
        "variable_name": variable_name,
        "default_value": default,
        "validation": {"type": "int", "min": lo, "max": hi, "required": False},
    }


DEFAULT_PARAMETERS = [
    _int_parameter("CPUs", "Number of CPU cores for the job.", "num_cpus", default=1, lo=1, hi=16),
    _int_parameter(
        "Memory (MB)",
        "Memory for the job, in megabytes.",
        "memory_mb",
        default=2048,
        lo=256,
        hi=262144,
    ),
    _int_parameter(
        "Time limit (minutes)",
        "How long the job may run before it is stopped.",
        "time_limit_min",
        default=240,
        lo=5,
        hi=10080,
    ),
    _int_parameter(
        "GPUs",
        "Number of GPUs (Slurm resources with GPUs only).",
        "gpus",
        default=0,
        lo=0,
        hi=8,
    ),
]

#: the two launch parameters the HuBMAP portal sends (UWS-REFERENCE §1.18), for a site that
#: serves it: declare them beside DEFAULT_PARAMETERS and map them with PORTAL_PARAMETER_MAPPING
PORTAL_PARAMETERS = [
    {
        "display_name": "Time limit (minutes, portal)",
        "description": "The time limit under the portal's name; empty: the one above.",
        "variable_name": "time_limit_minutes",
        "default_value": None,
        "validation": {"type": "int", "min": 1, "max": 10080, "required": False},
    },
    {
        "display_name": "GPU",
        "description": "One GPU for the job (resources with GPUs only).",
        "variable_name": "gpu_enabled",
        "default_value": False,
        "validation": {"type": "bool", "required": False},
    },
]
#: a resource's ``parameter_mapping`` for DEFAULT_PARAMETERS + PORTAL_PARAMETERS: each default
#: as itself, the portal's names onto the same options (``gpu_enabled: true`` is one GPU)
PORTAL_PARAMETER_MAPPING = {
    **{p["variable_name"]: p["variable_name"] for p in DEFAULT_PARAMETERS},
    "time_limit_minutes": "time_limit_min",
    "gpu_enabled": "gpus",
}


def with_portal_parameters() -> list[dict]:
    """A fresh copy of DEFAULT_PARAMETERS + PORTAL_PARAMETERS (for ``c.UWS.parameters``)."""
    return [
        dict(p, validation=dict(p["validation"])) for p in DEFAULT_PARAMETERS + PORTAL_PARAMETERS
    ]


#: settings that must be positive (counts and sizes), checked by `UWS.validate`
_POSITIVE_COUNTS = (
    "max_upload_size",
    "max_json_body_size",
    "max_listed_entries",
    "fs_workers",
    "max_jobs_per_workspace",
    "rescan_concurrency",
)
#: settings that must be a positive duration
#: hosts a plain-HTTP slurmrestd may be on without a warning (tokens never leave the machine)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_POSITIVE_DURATIONS = (
    "reconcile_interval",
    "job_sync_interval",
    "job_orphan_grace",
    "slurm_poll_interval",
    "slurm_command_timeout",
    "header_timeout",
    "body_idle_timeout",
    "body_timeout",
    "idempotency_window_hours",
    "hub_answer_wait",
    "status_check_timeout",
    "disk_quota_check_interval",
    "user_sync_interval",
    "session_check_interval",
)
#: what `UWS.disk_quota_action` may be
DISK_QUOTA_ACTIONS = ("none", "warn", "stop")


class UWS(Configurable):
    """Workspaces, jobs, sharing and quotas on top of JupyterHub."""

    root_dir = Unicode(
        "",
        help="""Directory under which workspaces live, as <root_dir>/<posix user>/<workspace id>/.

        Must be an absolute path to an existing directory that the uws service (root, in a
        multi-user deployment) can write, and that the users' accounts can traverse (their
        jobs run inside their workspaces).
        """,
    ).tag(config=True)

    db_url = Unicode(
        "sqlite:///uws.sqlite",
        help="""SQLAlchemy URL of the uws database (workspaces, jobs, shares, quotas, identities).

        SQLite (in WAL mode) by default; use PostgreSQL in production, e.g.
        ``postgresql+psycopg://uws:secret@db.example.org/uws``. Relative SQLite paths are
        relative to the hub's working directory. The schema is created and upgraded with
        Alembic (version table ``uws_alembic_version``) when the service starts.
        """,
    ).tag(config=True)

    db_kwargs = Dict(
        help="Extra keyword arguments for sqlalchemy.create_engine (e.g. pool_size)."
    ).tag(config=True)

    upgrade_db = Bool(
        True,
        help="""Upgrade the uws database schema to the newest version when the service starts.

        Turn off to run ``uws-hub db upgrade`` yourself during maintenance windows.
        """,
    ).tag(config=True)

    symlink_roots = List(
        Unicode(),
        help="""Directories that workspace symlinks may point into (e.g. shared datasets).

        A symlink's resolved target must lie under one of these. Empty: no symlinks can be
        created. UWS allowed any target; uws_hub does not.
        """,
    ).tag(config=True)

    dataset_resolver = Unicode(
        "",
        help="""How dataset links (symlinks with ``dataset_uuid``) find their dataset's directory.

        ``""`` (the default): dataset links are refused with a 400 saying so. ``"template"``:
        the directory is `dataset_path_template` with the id filled in (datasets at a fixed
        place; no token is needed, the filesystem decides who may read them). ``"http"``:
        one POST per request to `dataset_lookup_url` with all of its ids and the caller's
        ``globus_groups_token`` as a Bearer token (a lookup service of the kind HuBMAP runs:
        it answers where each dataset the caller may read lies). Either way the directory
        must lie under `symlink_roots`. The token is passed on only: never stored or logged.
        """,
    ).tag(config=True)

    dataset_path_template = Unicode(
        "",
        help="""Where a dataset lies, for dataset_resolver = "template": an absolute path naming
        ``{uuid}`` once, e.g. ``/data/{uuid}``, under one of `symlink_roots`. An id whose
        directory does not exist is answered as an unknown dataset.
        """,
    ).tag(config=True)

    dataset_lookup_url = Unicode(
        "",
        help="""The dataset lookup service, for dataset_resolver = "http", e.g.
        ``https://ingest.example.org/datasets/file-system-abs-path`` (HuBMAP: its
        ``<root_url>/datasets/file-system-abs-path``). It receives a POST of a JSON list of
        dataset ids with ``Authorization: Bearer <globus_groups_token>`` and answers a list of
        ``{"uuid", "path"}`` or ``{"uuid", "error"}``; redirects are not followed.
        """,
    ).tag(config=True)

    dataset_lookup_timeout = Float(
        30.0,
        help='Seconds to wait for the dataset lookup service to answer (dataset_resolver = "http").',
    ).tag(config=True)

    job_types = Dict(
        {"jupyter_lab": {"name": "JupyterLab"}},
        help="""Job types: id -> settings.

        ``name`` (display name, required); ``command`` (list; default
        ``["jupyterhub-singleuser"]``); ``environment`` (dict); ``default_url`` (default
        ``/lab``); ``resources`` (ids of c.UWS.resources that may run it; default: all);
        ``time_limit`` (minutes, when the launch names none); ``modules`` (``module load`` before
        the command on Slurm); ``prologue`` (shell lines before the command, e.g. activating a
        venv). Several ids may share a command with different environments.
        """,
    ).tag(config=True)

    resources = Dict(
        {"local": {"kind": "local", "name": "This server"}},
        help="""Where jobs run: id -> settings.

        ``kind``: ``local`` (a process on the hub host, as the workspace owner) or ``slurm`` (a batch
        job). ``name``, ``description``. Limits a launch may ask for: ``max_cpus``,
        ``max_memory_mb``, ``max_time_limit_min``, ``max_gpus``. Slurm: ``partition``, ``account``,
        ``qos``, ``reservation``, ``gpu_gres`` (default ``gpu``: GPUs become ``--gres=gpu:N``),
        ``gpu_partition`` (used instead of ``partition`` when GPUs are asked for),
        ``extra_directives`` (``--name=value`` lines added to every batch script; on a
        ``rest`` cluster they become job properties, and only those slurmrestd has are taken),
        ``cluster`` (which of c.UWS.slurm_clusters runs its jobs; default: ``default``, or the
        only one), ``start_timeout`` (seconds until a job that is not answering is given up). Local:
        ``enforce_memory`` (true: each process of a job gets the job's memory as its address-space
        limit; default false, memory is then advisory as MEM_LIMIT).

        ``parameter_mapping`` (as UWS): c.UWS.parameters name -> the option it sets on this
        resource, e.g. ``{"num_cpus": "num_cpus", "memory_mb": "memory_mb", "time_limit_minutes":
        "time_limit_min", "gpu_enabled": "gpus"}``. The options jobs understand are ``num_cpus``,
        ``memory_mb``, ``time_limit_min`` (whole numbers) and ``gpus`` (a count, or a yes/no
        parameter: true is one GPU, refused on a resource without GPUs); others reach the job as
        ``UWS_PARAM_<OPTION>``. Parameters the mapping does not name are dropped on this resource;
        without a mapping every parameter is taken under its own name. The translated options are
        stored on the job.
        """,
    ).tag(config=True)

    max_jobs_per_workspace = Integer(
        1,
        help="""How many jobs may be pending or running in one workspace at once. A job that is
        stopping does not count, so clients can stop and start again at once.""",
    ).tag(config=True)

    job_sync_interval = Float(
        5.0,
        help="""Seconds between the service's passes that bring job records in line with the hub
        (servers gone, stops to retry, local time limits, named servers to remove).""",
    ).tag(config=True)

    time_warnings = List(
        Integer(),
        [1800, 600, 120],
        help="""Seconds before a running job's time limit at which its owner is warned: in the
        job's record (``job_details.current_job_details.time_warning``), its event stream, a
        banner on the workspace page and a notification inside JupyterLab. Each point is warned
        once per end time (an extension re-arms them). Empty: no warnings.""",
    ).tag(config=True)

    session_check_interval = Float(
        15.0,
        help="""Seconds between the service's checks of running jobs for time-limit warnings and
        idleness. Keep it well under the smallest of ``time_warnings``.""",
    ).tag(config=True)

    max_extensions = Integer(
        2,
        help="""How many times a running job may be extended (``PUT /jobs/<id>/extend/``) where
        neither its resource nor its job type sets ``max_extensions``; 0: no extensions.
        Resources and job types may each set ``max_extensions``, ``max_extension_min``,
        ``max_total_time_min`` and ``idle_timeout_min``; the stricter applies.""",
    ).tag(config=True)

    max_extension_min = Integer(
        60,
        help="""Minutes one extension may add, where neither the resource nor the job type sets
        ``max_extension_min``.""",
    ).tag(config=True)

    idle_timeout_min = Integer(
        0,
        help="""Minutes without activity after which a running job is stopped (*Stopped after N
        minutes idle.*), where neither the resource nor the job type sets ``idle_timeout_min``;
        0: jobs are never stopped for idleness. Activity is the hub's record of the server's
        last activity, and a kernel that is busy counts as activity whatever that says.""",
    ).tag(config=True)

    idle_warning = Integer(
        600,
        help="""Seconds before an idle stop at which the owner is warned (as for time limits).
        Any activity after the warning cancels the stop.""",
    ).tag(config=True)

    audit_retention_days = Integer(
        0,
        help="""Days the audit log keeps its events; older ones are deleted by the service once an
        hour (each pruning is itself recorded as an ``audit.prune`` event). 0 keeps every event
        forever. ``uws-hub audit-prune --before DATE`` prunes by hand.""",
    ).tag(config=True)

    job_orphan_grace = Float(
        30.0,
        help="""Seconds a new job may be missing from the hub's server list before the service
        treats it as orphaned: then a Slurm job or local process that still runs without a hub
        server is cancelled (it would spend core-hours nobody can reach) and the job ends
        ``failed``. Covers the moment between recording a job and the hub registering its spawn.""",
    ).tag(config=True)

    slurm_clusters = Dict(
        {},
        help="""The Slurm clusters jobs run on: id -> settings; a Slurm resource names its
        ``cluster``. Empty: one cluster, ``default``, reached with the Slurm commands of this
        host and its own configuration.

        ``way``: ``commands`` (``sbatch``, ``squeue``, ``scancel``, ``scontrol`` on the hub's
        host, each job's run as its owner through ``runuser``) or ``rest`` (the cluster's
        ``slurmrestd``: the hub's host then needs no Slurm commands or munge). ``name`` (shown
        in /status/). Each cluster has its own monitor (one queue read per
        ``poll_interval``, default c.UWS.slurm_poll_interval), health and metric series; a
        cluster that does not answer makes only its own jobs unknown.

        commands: ``slurm_conf`` (the cluster's slurm.conf, as SLURM_CONF for its commands and
        jobs; default the host's).

        rest: ``url`` (slurmrestd, e.g. ``https://slurm-rest:6820``); ``jwt_key_file`` (the
        cluster's ``jwt_hs256.key``, readable by the hub's and the uws service's accounts and
        nobody else: each person's submit and cancel
        carries a token minted for them, lasting ``token_lifespan`` seconds, default 300) or
        ``token_source`` (``module:callable`` returning an object with ``token(username,
        operator=False)``: a site's token service); ``read_user`` (an ordinary account whose
        token reads every job, once per interval); ``operator_user`` (a Slurm operator,
        AdminLevel=Operator: raises time limits for extensions, which people may not do
        themselves; without it extensions of this cluster's jobs are refused);
        ``refused_users`` (accounts never given a token besides root, default ``["slurm"]``:
        name the SlurmUser); ``version`` / ``db_version`` (slurmrestd's API, default
        ``v0.0.38`` / ``v0.0.38``, Slurm 22.05: the ``openapi/dbv0.0.38`` plugin serves
        ``/slurmdb/v0.0.38/``).

        Both ways: ``job_path`` (PATH for this cluster's jobs, where its nodes differ from the
        hub's host; default c.UWS.job_path).""",
    ).tag(config=True)

    slurm_poll_interval = Float(
        10.0,
        help="""Seconds between scheduler queries of the shared Slurm monitor: one ``squeue`` per
        interval answers the status of every Slurm job the hub tracks.""",
    ).tag(config=True)

    slurm_command_timeout = Float(
        20.0,
        help="""Seconds before a scheduler command is given up. A timeout or an error means
        "unknown": a job is never marked ended because the scheduler did not answer.""",
    ).tag(config=True)

    job_path = Unicode(
        help="""PATH for jobs (and the scheduler commands run for them). Default: the hub's
        Python environment, then the system directories.""",
    ).tag(config=True)

    @default("job_path")
    def _default_job_path(self):
        import sys

        return os.pathsep.join(
            [
                os.path.dirname(sys.executable),
                "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
            ]
        )

    singleuser_command = List(
        Unicode(),
        ["jupyterhub-singleuser"],
        help="Command of job types that name none (found on c.UWS.job_path).",
    ).tag(config=True)

    default_job_type = Unicode(
        None,
        allow_none=True,
        help="""Job type used when a start request names none and the workspace has no default.""",
    ).tag(config=True)

    parameters = List(
        Dict(),
        help="""Resource parameters offered at launch, in the UWS shape:
        ``{display_name, description, variable_name, default_value,
        validation: {type: int|float|str|bool, min, max, required}}``. Bounds are
        inclusive. Default: num_cpus (1-16, default 1), memory_mb (256-262144, default 2048),
        time_limit_min (5-10080, default 240), gpus (0-8, default 0).
        """,
    ).tag(config=True)

    @default("parameters")
    def _default_parameters(self):
        return [dict(p, validation=dict(p["validation"])) for p in DEFAULT_PARAMETERS]

    service_name = Unicode(
        "uws", help="Name of the hub-managed uws service (its URL prefix is /services/<name>/)."
    ).tag(config=True)

    service_url = Unicode(
        "http://127.0.0.1:10101",
        help="Where the uws service listens (the hub's proxy routes /services/<name>/ to it).",
    ).tag(config=True)

    job_service_url = Unicode(
        "",
        help="""Where job servers reach the uws service (for the session warnings and "Extend"
        inside JupyterLab): an address the compute nodes can connect to, as JupyterHub's
        ``hub_connect_url`` is for the hub. Empty: ``service_url``.""",
    ).tag(config=True)

    admin_users = Set(
        Unicode(), help="Hub users given the uws-admin role (manage quotas, read usage and audit)."
    ).tag(config=True)

    admin_groups = Set(Unicode(), help="Hub groups whose members get the uws-admin role.").tag(
        config=True
    )

    hub_admins_are_uws_admins = Bool(
        True, help="Give the uws-admin role to the hub's admin_users as well."
    ).tag(config=True)

    search_shows_email = Bool(
        True,
        help="""The people search (GET /users/?search=) answers each person's e-mail address and
        matches the search term against it, as UWS did (portals show it to tell people apart).
        False keeps addresses private: `email` is then "" and the search matches names only.""",
    ).tag(config=True)

    # ---- e-mail ----------------------------------------------------------------------------

    site_name = Unicode(
        "uws_hub", help='The name of this service in e-mails and pages (e.g. "Lab Workspaces").'
    ).tag(config=True)

    smtp_host = Unicode(
        "",
        help="""SMTP server for notifications (share invitations, accepted/declined). Empty: no
        e-mail is sent (invitations still work; people see them in the API and pages).""",
    ).tag(config=True)
    smtp_port = Integer(25, help="SMTP port (587 with smtp_starttls, 465 with smtp_ssl).").tag(
        config=True
    )
    smtp_starttls = Bool(False, help="Upgrade the SMTP connection with STARTTLS.").tag(config=True)
    smtp_ssl = Bool(False, help="Connect to the SMTP server over TLS from the start.").tag(
        config=True
    )
    smtp_username = Unicode("", help="SMTP login (empty: no authentication).").tag(config=True)
    smtp_password = Unicode("", help="SMTP password (default: $UWS_SMTP_PASSWORD).").tag(
        config=True
    )

    @default("smtp_password")
    def _default_smtp_password(self):
        return os.environ.get("UWS_SMTP_PASSWORD", "")

    smtp_timeout = Float(20.0, help="Seconds for one SMTP conversation.").tag(config=True)
    smtp_poll_interval = Float(
        30.0, help="Seconds between the mailer's looks at the outbox (new mail wakes it at once)."
    ).tag(config=True)
    smtp_retry_delay = Float(
        30.0,
        help="""Seconds before the first retry of a message that could not be sent; each further
        retry waits twice as long, at most an hour.""",
    ).tag(config=True)
    smtp_max_attempts = Integer(
        10, help="Attempts per message before it is given up (its last error stays recorded)."
    ).tag(config=True)
    email_from = Unicode("uws-hub@localhost", help="Sender address of notifications.").tag(
        config=True
    )
    email_template_dir = Unicode(
        "",
        help="""A directory of e-mail templates overriding the shipped ones (same file names:
        share_invitation.txt, share_accepted.txt, share_declined.txt; Jinja2, first line
        ``Subject: ...``).""",
    ).tag(config=True)

    share_copy_workers = Integer(
        2,
        help="""Threads copying shared workspaces (each copy uses one for its whole run; more copies
        wait their turn). Separate from the threads that serve uploads and scans.""",
    ).tag(config=True)

    # ---- quotas --------------------------------------------------------------------------------

    default_disk_quota = Integer(
        0,
        help="""Disk limit per user in bytes, over all their workspaces (0: unlimited). Operators set
        per-user limits through the API (``PUT /api/users/<name>/quota``) or ``uws-hub quota``.""",
    ).tag(config=True)
    default_core_hours_quota = Float(
        0.0,
        help="""Core-hour limit per user (0: unlimited): finished jobs plus the running burn of live
        ones. A job is refused when its cores × time limit exceed what is left. The limit is per
        accounting period (``core_hours_period``).""",
    ).tag(config=True)

    core_hours_period = Unicode(
        "all",
        help="""Accounting period of the core-hour limits: ``all`` (usage never resets), ``month``,
        ``quarter`` or ``year`` (UTC calendar periods). Usage counts only what jobs ran within the
        current period — a job that began before the period counts from the period's start — so each person
        gets their limit again every period.""",
    ).tag(config=True)

    core_hours_year_start = Integer(
        1,
        help="""First month (1–12) of the accounting year, for ``quarter`` and ``year`` periods:
        e.g. 7 for allocation years from 1 July (quarters then start in July, October, January
        and April).""",
    ).tag(config=True)

    disk_quota_action = Enum(
        DISK_QUOTA_ACTIONS,
        "warn",
        help="""What happens to a person's running jobs once their workspaces have stayed over
        their disk limit for ``disk_quota_grace`` seconds (each job gets the whole grace, counted
        from when the usage passed the limit or from its own start, whichever is later):
        ``none`` (nothing more than the notices at 90 % and 100 %), ``warn`` (the job is marked
        with a notice shown on its page and in its event stream, and the person gets a reminder
        e-mail) or ``stop`` (the job is stopped, with the reason in its status and an e-mail).
        Every action is recorded in the audit log. API writes are refused over the limit
        whatever this says.""",
    ).tag(config=True)

    disk_quota_grace = Float(
        3600.0,
        help="""Seconds a running job may go on while its owner is over their disk limit before
        ``disk_quota_action`` applies to it: time to delete files or to ask for more.""",
    ).tag(config=True)

    disk_quota_check_interval = Float(
        30.0,
        help="""Seconds between checks of everyone's disk usage against their limits (a few
        queries, whatever the number of people). Each rescan also checks the workspace's owner
        at once.""",
    ).tag(config=True)

    quota_emails = Bool(
        True,
        help="""E-mail people when their disk usage reaches 90 % and 100 % of their limit (once
        per crossing) and when ``disk_quota_action`` applies to their jobs. Needs
        ``smtp_host``; the notices on the pages and in the job event streams show either way.""",
    ).tag(config=True)

    user_deletions_dir = Unicode(
        "uws_user_deletions",
        help="""Directory where the hub records that an administrator deleted a person (one small
        file per person, written by the authenticator's ``delete_user``; created mode 0700). The
        uws service settles each request on its next pass (``user_sync_interval``) and removes
        the file. Relative paths are relative to the hub's working directory.""",
    ).tag(config=True)

    user_sync_interval = Float(
        60.0,
        help="""Seconds between the service's comparisons of the hub's users with its own. A person
        deleted in the hub (on its admin page or through its API) is settled at the next one: jobs
        stopped, pending invitations withdrawn, workspaces held (see ``deleted_user_workspaces``).
        One missing from the hub without such a request (deleted another way) is settled once
        missing on two comparisons in a row.""",
    ).tag(config=True)

    deleted_user_grace = Float(
        30 * 86400.0,
        help="""Seconds the workspaces of a person deleted from the hub stay held (out of
        everyone's reach, files untouched, restorable by an operator) before
        ``deleted_user_workspaces`` applies to them.""",
    ).tag(config=True)

    deleted_user_workspaces = Enum(
        ("keep", "archive", "delete"),
        "keep",
        help="""What becomes of a deleted person's workspaces once ``deleted_user_grace`` has
        passed: ``keep`` (they stay held under ``<root_dir>/.uws-deleted/``), ``archive`` (moved
        to ``deleted_user_archive_dir``) or ``delete`` (removed for good). Each step is recorded
        in the audit log.""",
    ).tag(config=True)

    deleted_user_archive_dir = Unicode(
        "",
        help="""Absolute path of the directory that receives a deleted person's workspaces when
        ``deleted_user_workspaces`` is ``archive``, as ``<name>-<user id>/<workspace id>/``
        (files keep their owners and modes; another filesystem is fine: they are copied, then
        removed from the hold area). Required for ``archive``.""",
    ).tag(config=True)

    download_zip_max_bytes = Integer(
        10 * 1024**3,
        help="""Largest folder (the total of its files' sizes, in bytes) that can be downloaded as
        a zip from the API or the workspace page; larger ones are refused with the numbers.
        0: no cap.""",
    ).tag(config=True)

    zip_compression_level = Integer(
        6,
        help="""Deflate level (0–9) of folder downloads: 0 stores files uncompressed (fastest, for
        data that is already compressed), 6 is ``zip``'s default, 9 the smallest.""",
    ).tag(config=True)

    token_client_services = Set(
        Unicode(),
        help="""Hub services (portals) that may exchange ``user_info`` for a user's API token at
        ``POST /api/tokens/`` (they get the ``uws-token-client`` role). Users can be given that
        role through ``c.JupyterHub.load_roles`` too.""",
    ).tag(config=True)

    token_client_users = Set(
        Unicode(),
        help="""Hub users (e.g. a portal's account imported from UWS, where it was in the
        ``api_clients`` group) that may exchange ``user_info`` for a user's API token at
        ``POST /api/tokens/``: they get the ``uws-token-client`` role.""",
    ).tag(config=True)

    token_expires_in = Integer(
        30 * 86400,
        help="""Lifetime in seconds of API tokens issued by ``POST /api/tokens/`` (0: the hub's
        default, which may be "never").""",
    ).tag(config=True)

    token_client_scopes = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        help="""Scopes of the tokens ``POST /api/tokens/`` issues for a trusted client, by the
        client's name (the hub service or user that owns the client token). A client not listed
        gets only the uws API: ``access:services!service=<service_name>`` and the person's own
        ``custom:uws:*`` scopes (``uws_hub.scopes.token_api_scopes(service_name)``), nothing of
        the hub's own API. The person must hold every scope listed, or the exchange is refused;
        ``["inherit"]`` gives all of the person's permissions. Example:
        ``{"portal": [*uws_hub.scopes.token_api_scopes("uws"), "read:users!user"]}``.""",
    ).tag(config=True)

    globus_token_scopes = List(
        Unicode(),
        help="""Scopes of the tokens ``POST /api/tokens/`` issues for a Globus access token. Empty
        (the default): the uws API only, as for a client not listed in `token_client_scopes`.""",
    ).tag(config=True)

    globus_redirect_urls = Set(
        Unicode(),
        help="""Portal pages Globus may send people back to in the Globus browser mode of
        ``POST /api/tokens/`` (UWS's ``authentication_type: oauth``): ``{"redirect_url"}``
        answers ``{"auth_uri"}``, the hub's Globus authorize URL; Globus sends the person back to
        ``redirect_url`` with a ``code``, which the portal exchanges (``{"redirect_url",
        "code"}``) for a hub token. Exact URLs, compared as written; each must also be
        registered as a redirect URL of the hub's Globus app. Empty (the default): the browser
        mode is off (only Globus access tokens, ``auth_token``, are exchanged). Needs the
        ``uws-globus`` or ``uws-account-api`` login.""",
    ).tag(config=True)

    globus_oauth_scopes = List(
        Unicode(),
        [
            "openid",
            "profile",
            "email",
            "urn:globus:auth:scope:transfer.api.globus.org:all",
            "urn:globus:auth:scope:auth.globus.org:view_identities",
            "urn:globus:auth:scope:groups.api.globus.org:all",
        ],
        help="""Scopes the Globus browser mode of ``POST /api/tokens/`` asks for (default: UWS's).
        The hub keeps none of the Globus tokens: ``openid``, ``profile`` and ``email`` say who
        the person is, and a groups scope (``...groups.api.globus.org:all`` or
        ``:view_my_groups_and_memberships``) is needed when the hub checks Globus groups; the
        others only make the consent page ask what UWS asked.""",
    ).tag(config=True)

    def hub_authenticator_class(self):
        """The hub's authenticator class (``c.JupyterHub.authenticator_class``), or None."""
        value = (
            self.config.JupyterHub.get("authenticator_class")
            if "JupyterHub" in self.config
            else None
        )
        if value is None:
            return None
        if isinstance(value, str):
            from importlib.metadata import entry_points

            for ep in entry_points(group="jupyterhub.authenticators"):
                if ep.name == value:
                    return ep.load()
            from traitlets.utils.importstring import import_item

            try:
                return import_item(value)
            except (ImportError, ValueError):
                return None
        return value

    single_account = Bool(
        help="""Map every hub user to the account the service runs as.

        For running uws_hub as an ordinary (non-root) user, where the service cannot create
        files owned by other accounts: development (`make run`) and demos (the Binder demo),
        never a hub that people share — everyone's files and jobs then belong to one account.
        Default: True when the service does not run as root; refused as root (every login
        would work as root).
        """,
    ).tag(config=True)

    @default("single_account")
    def _default_single_account(self):
        return os.geteuid() != 0

    user_dir_mode = Integer(
        0o700, help="Mode of each user's directory <root_dir>/<user>/ (octal, e.g. 0o700)."
    ).tag(config=True)

    workspace_dir_mode = Integer(0o700, help="Mode of each workspace directory (octal).").tag(
        config=True
    )

    max_upload_size = Integer(
        2 * 1024**3,
        help="Largest multipart upload body accepted, in bytes (streamed to disk, not held in memory).",
    ).tag(config=True)

    max_json_body_size = Integer(
        64 * 1024**2,
        help="Largest JSON request body accepted, in bytes (initial file contents travel in JSON).",
    ).tag(config=True)

    header_timeout = Float(
        60,
        help="""Seconds the service waits for a request's headers on an open connection (and
        keeps an idle connection open) before closing it. Keep it longer than the proxy's
        keep-alive idle time (Node's: 5 seconds), so the proxy always closes idle connections
        first.""",
    ).tag(config=True)

    body_idle_timeout = Float(
        30,
        help="""Seconds a request body may go without any bytes arriving (uploads included)
        before the service answers 408 and closes the connection: a client that declares a
        body and stops sending cannot hold the service.""",
    ).tag(config=True)

    body_timeout = Float(
        60,
        help="""Seconds a request body other than an upload (JSON: every call but
        ``PUT /workspaces/<id>/upload/``) may take to arrive in full; then 408. Uploads are
        bounded by `body_idle_timeout` only: a large file on a slow line keeps sending.""",
    ).tag(config=True)

    rate_limit_per_token = Float(
        20,
        help="""Calls a second each token (or logged-in browser session) may make to the API on
        average; over it, calls are answered 429 with ``Retry-After``. Each caller has its own
        allowance: one busy script never slows anyone else. 0 turns the limit off.""",
    ).tag(config=True)

    rate_limit_token_burst = Integer(
        200,
        help="""Calls a token may make at once, above `rate_limit_per_token`, before the
        average applies (a page loading, a script's loop starting).""",
    ).tag(config=True)

    rate_limit_per_address = Float(
        20,
        help="""Calls a second from one client address without a valid credential (the public
        ``job_types``, ``parameters``, ``status``, ``tokens`` and any call whose token the hub
        refused) may make on average; over it, 429 with ``Retry-After``. The address is the
        one the proxy reports (``X-Forwarded-For``). 0 turns the limit off.""",
    ).tag(config=True)

    rate_limit_address_burst = Integer(
        200,
        help="Calls one address without a credential may make at once, above `rate_limit_per_address`.",
    ).tag(config=True)

    hub_answer_wait = Float(
        1.0,
        help="""Seconds ``PUT /workspaces/<id>/start/`` and ``PUT /jobs/<id>/stop/`` wait for
        the hub to carry out a job's start or stop before answering with the job ``pending`` or
        ``stopping`` (the work goes on; the job's status and event stream say how it ends), so
        a slow hub or scheduler never holds up the API. The hub's refusals of a start (too many
        starts at once, a bad request) come sooner and are answered as errors.""",
    ).tag(config=True)

    idempotency_window_hours = Float(
        24,
        help="""How long the answer to a creating call made with an ``Idempotency-Key`` header
        is kept: a retry with the same key within this time gets the first answer again and
        nothing is done twice (create workspace, start job, share, upload, token exchange).""",
    ).tag(config=True)

    max_listed_entries = Integer(
        10000,
        help="""At most this many files and symlinks are listed in a workspace's
        current_workspace_details after a scan (disk usage always counts everything).""",
    ).tag(config=True)

    reconcile_interval = Float(
        30.0,
        help="Seconds between reconciler passes that resume durable work (initializing, deleting).",
    ).tag(config=True)

    fs_workers = Integer(
        4, help="Threads for filesystem work (writes, scans, deletes) off the event loop."
    ).tag(config=True)

    rescan_interval = Float(
        300.0,
        help="""Seconds between rescans of a workspace while one of its jobs runs, so that what the
        job writes shows in the file list, the size and the disk quota within this time (the
        rescans of many such workspaces are spread over it, a few every 5 s). A workspace is
        also rescanned as soon as a job of it ends. 0: only when jobs end.""",
    ).tag(config=True)

    rescan_concurrency = Integer(
        2,
        help="""Rescans that may run at once (each holds a filesystem thread; large trees are
        counted by ``du``): a hundred running jobs do not start a hundred scans.""",
    ).tag(config=True)

    cors_allowed_origins = List(
        Unicode(),
        help="""Origins (scheme://host[:port]) allowed to call the API from a browser page on
        another site, e.g. a data portal. No wildcard; empty means same-origin only.""",
    ).tag(config=True)

    token_cache_seconds = Integer(
        60,
        help="""How long the service trusts the hub's answer about a token before asking again.

        A revoked token stops working at most this many seconds later; 0 asks the hub on every
        request (slower).""",
    ).tag(config=True)

    cookie_secret_file = Unicode(
        "uws_cookie_secret",
        help="""File holding the secret that signs the service's login cookie (created, mode 0600,
        if missing). Relative paths are relative to the hub's working directory.""",
    ).tag(config=True)

    public_url = Unicode(
        "",
        help="""The hub's public URL as users reach it (e.g. https://hub.example.org), used as
        ``url_domain`` of jobs' connection details. Default: taken from each request.""",
    ).tag(config=True)

    hub_api_timeout = Float(10.0, help="Timeout in seconds for calls to the hub's REST API.").tag(
        config=True
    )

    status_cache_seconds = Float(
        5.0,
        help="""How long ``GET /api/status/`` reuses its last round of dependency checks
        (database, storage, hub, each resource's scheduler, the login method's servers), so
        that frequent health probes stay cheap. 0: check on every call (calls arriving
        while a round runs still share it).""",
    ).tag(config=True)

    status_check_timeout = Float(
        5.0,
        help="""Seconds each dependency check of ``GET /api/status/`` may take; one that takes
        longer is reported as not connected.""",
    ).tag(config=True)

    # ---- derived ---------------------------------------------------------------------------

    @cached_property
    def resource_map(self) -> dict[str, Resource]:
        return parse_resources(self.resources)

    @cached_property
    def cluster_map(self) -> dict[str, ClusterSpec]:
        return parse_clusters(self.slurm_clusters)

    @cached_property
    def job_type_map(self) -> dict[str, JobType]:
        return parse_job_types(self.job_types, self.resource_map)

    @cached_property
    def parameter_list(self) -> list[Parameter]:
        return parse_parameters(self.parameters)

    @property
    def service_port(self) -> int:
        return urlparse(self.service_url).port or 80

    # ---- validation --------------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Raise ConfigError for a setting that cannot work; return warnings worth logging.

        Checks, in this order: the account mode, the root directory, the database URL, job
        types, resources and parameters, symlink roots, URLs, directory modes, sizes and
        counts, accounting periods, durations, and the scopes of issued tokens.
        """
        warnings: list[str] = []
        if self.single_account and os.geteuid() == 0:
            raise ConfigError(
                "c.UWS.single_account = True maps every login to the account the service runs "
                "as, which is root here: remove the setting (as root each login has its own account)"
            )
        self._validate_root_dir(warnings)
        self._validate_db_url()
        self._validate_jobs()
        self._validate_clusters(warnings)
        self._validate_symlink_roots()
        self._validate_datasets()
        self._validate_urls()
        self._validate_modes()
        self._validate_positive(_POSITIVE_COUNTS, "must be positive")
        self._validate_accounting()
        self._validate_positive(_POSITIVE_DURATIONS, "must be a positive number of seconds")
        if self.rescan_interval < 0:
            raise ConfigError("c.UWS.rescan_interval must be 0 (only when jobs end) or positive")
        if self.disk_quota_grace < 0 or self.download_zip_max_bytes < 0:
            raise ConfigError("c.UWS.disk_quota_grace and download_zip_max_bytes must be 0 or more")
        if not 0 <= self.zip_compression_level <= 9:
            raise ConfigError("c.UWS.zip_compression_level must be 0 to 9")
        self._validate_deleted_users(warnings)
        self._validate_token_scopes()
        self._validate_sessions()
        return warnings

    def _validate_sessions(self) -> None:
        if any(p <= 0 for p in self.time_warnings):
            raise ConfigError(
                f"c.UWS.time_warnings must be positive numbers of seconds, got {self.time_warnings}"
            )
        for name in ("max_extensions", "max_extension_min", "idle_timeout_min", "idle_warning"):
            if getattr(self, name) < 0:
                raise ConfigError(f"c.UWS.{name} must be 0 or more")

    def _validate_deleted_users(self, warnings: list[str]) -> None:
        """What becomes of deleted people's workspaces (see `users.deletions`)."""
        if self.deleted_user_grace < 0:
            raise ConfigError("c.UWS.deleted_user_grace must be 0 or more seconds")
        where = f"c.UWS.deleted_user_archive_dir = {self.deleted_user_archive_dir!r}"
        if self.deleted_user_workspaces != "archive":
            if self.deleted_user_archive_dir:
                warnings.append(
                    f"{where} is not used: c.UWS.deleted_user_workspaces is "
                    f"{self.deleted_user_workspaces!r}, not 'archive'"
                )
            return
        archive = self.deleted_user_archive_dir
        if not archive:
            raise ConfigError(
                "c.UWS.deleted_user_workspaces = 'archive' needs c.UWS.deleted_user_archive_dir: "
                "the directory that receives deleted people's workspaces, e.g. /srv/uws/archive"
            )
        if not os.path.isabs(archive):
            raise ConfigError(f"{where} must be an absolute path")
        if not os.path.isdir(archive):
            raise ConfigError(
                f"{where} is not an existing directory: create it (mkdir -p {archive})"
            )
        real, root = os.path.realpath(archive), os.path.realpath(self.root_dir)
        if real == root or real.startswith(root.rstrip("/") + "/"):
            raise ConfigError(
                f"{where} lies inside c.UWS.root_dir, where people's directories are: "
                "choose a directory outside it"
            )

    def _validate_jobs(self) -> None:
        self.resource_map  # noqa: B018 - parses and raises ConfigError
        self.job_type_map  # noqa: B018
        if self.default_job_type is not None and self.default_job_type not in self.job_type_map:
            raise ConfigError(
                f"c.UWS.default_job_type = {self.default_job_type!r} is not a configured job type; "
                f"use one of {sorted(self.job_type_map)} or add it to c.UWS.job_types"
            )
        self.parameter_list  # noqa: B018
        check_parameter_mappings(self.resource_map, self.parameter_list)

    def _validate_clusters(self, warnings: list[str]) -> None:
        """Each Slurm resource's cluster is configured; a resource on a slurmrestd cluster
        asks only for what slurmrestd's job properties can say. Warnings: a key this process
        cannot read, tokens sent unencrypted to another host, root as the operator."""
        from .jobs.launch import rest_property

        clusters = self.cluster_map
        for cid, spec in clusters.items():
            where = f"c.UWS.slurm_clusters[{cid!r}]"
            if spec.way != "rest":
                continue
            if spec.jwt_key_file and not os.access(spec.jwt_key_file, os.R_OK):
                warnings.append(
                    f"{where}: jwt_key_file {spec.jwt_key_file} cannot be read by this process: "
                    "jobs on this cluster fail until it can (the hub and the uws service both "
                    "mint tokens)"
                )
            host = urlparse(spec.url or "").hostname or ""
            if (spec.url or "").startswith("http://") and host not in LOOPBACK:
                warnings.append(
                    f"{where}: {spec.url} is plain HTTP to another host: people's Slurm tokens "
                    "and their jobs' environments cross the network unencrypted; use https"
                )
            if spec.operator_user == "root":
                warnings.append(
                    f"{where}: operator_user 'root' raises time limits with a token of root "
                    "(slurmrestd 22.05 runs it as root; later versions refuse it): prefer an "
                    "account with AdminLevel=Operator"
                )
        for rid, res in self.resource_map.items():
            if res.kind != "slurm":
                continue
            cid = job_cluster(self, rid)
            where = f"c.UWS.resources[{rid!r}]"
            if cid not in clusters:
                raise ConfigError(
                    f"{where}: cluster {cid!r} is not in c.UWS.slurm_clusters "
                    f"({sorted(clusters)}); add it there or name one of those"
                )
            if clusters[cid].way == "rest":
                for directive in res.extra_directives:
                    try:
                        rest_property(directive)
                    except ValueError as e:
                        raise ConfigError(f"{where}: {e}") from e

    def _validate_symlink_roots(self) -> None:
        for i, root in enumerate(self.symlink_roots):
            where = f"c.UWS.symlink_roots[{i}] = {root!r}"
            if not os.path.isabs(root):
                raise ConfigError(f"{where} must be an absolute path")
            if os.path.realpath(root) == "/":
                raise ConfigError(
                    f"{where} would allow links to anything; name dataset directories instead"
                )
            if not os.path.isdir(root):
                raise ConfigError(f"{where} is not an existing directory; create it or remove it")

    def _validate_datasets(self) -> None:
        """The dataset-link settings (see `workspaces.datasets`)."""
        kind = self.dataset_resolver
        if kind not in ("", "template", "http"):
            raise ConfigError(
                f"c.UWS.dataset_resolver = {kind!r} must be '' (off), 'template' or 'http'"
            )
        if kind and not self.symlink_roots:
            raise ConfigError(
                f"c.UWS.dataset_resolver = {kind!r} links datasets, but c.UWS.symlink_roots "
                "is empty: add the directory the datasets lie under"
            )
        if kind == "template":
            self._validate_dataset_template()
        elif kind == "http":
            url = urlparse(self.dataset_lookup_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigError(
                    f"c.UWS.dataset_lookup_url = {self.dataset_lookup_url!r} must be the lookup "
                    "service's URL, e.g. https://ingest.example.org/datasets/file-system-abs-path"
                )
            if self.dataset_lookup_timeout <= 0:
                raise ConfigError(
                    "c.UWS.dataset_lookup_timeout must be a positive number of seconds"
                )

    def _validate_dataset_template(self) -> None:
        from string import Formatter

        template = self.dataset_path_template
        where = f"c.UWS.dataset_path_template = {template!r}"
        try:
            fields = [f for _, f, _, _ in Formatter().parse(template) if f is not None]
        except ValueError as e:
            raise ConfigError(f"{where} is not a template like /data/{{uuid}}: {e}") from e
        if fields != ["uuid"] or "{uuid}" not in template:
            raise ConfigError(
                f"{where} must name {{uuid}} once and nothing else, e.g. /data/{{uuid}}"
            )
        parent = os.path.dirname(template.format(uuid="0" * 32))
        if not os.path.isabs(parent):
            raise ConfigError(f"{where} must be an absolute path")
        real = os.path.realpath(parent)
        roots = [os.path.realpath(r) for r in self.symlink_roots]
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
            raise ConfigError(
                f"{where} is not under c.UWS.symlink_roots ({', '.join(self.symlink_roots)}): "
                "add the datasets' directory there"
            )

    def _validate_urls(self) -> None:
        url = urlparse(self.service_url)
        if url.scheme not in ("http", "https") or not url.hostname or not url.port:
            raise ConfigError(
                f"c.UWS.service_url = {self.service_url!r} must look like http://127.0.0.1:10101"
            )
        for origin in self.cors_allowed_origins:
            o = urlparse(origin)
            if (
                origin == "*"
                or o.scheme not in ("http", "https")
                or not o.netloc
                or o.path not in ("", "/")
            ):
                raise ConfigError(
                    f"c.UWS.cors_allowed_origins entry {origin!r} must be an origin like https://portal.example.org (no wildcard)"
                )

    def _validate_modes(self) -> None:
        for name in ("user_dir_mode", "workspace_dir_mode"):
            mode = getattr(self, name)
            if mode & ~0o7777 or not mode & stat.S_IRWXU == stat.S_IRWXU:
                raise ConfigError(
                    f"c.UWS.{name} = {oct(mode)} must be a mode like 0o700 that lets the owner rwx"
                )

    def _validate_positive(self, names: tuple[str, ...], must: str) -> None:
        for name in names:
            if getattr(self, name) <= 0:
                raise ConfigError(f"c.UWS.{name} {must}")

    def _validate_accounting(self) -> None:
        if self.core_hours_period not in PERIODS:
            raise ConfigError(
                f"c.UWS.core_hours_period = {self.core_hours_period!r} must be one of "
                + ", ".join(PERIODS)
            )
        if not 1 <= self.core_hours_year_start <= 12:
            raise ConfigError(
                f"c.UWS.core_hours_year_start = {self.core_hours_year_start} must be a month, 1–12"
            )
        if self.audit_retention_days < 0:
            raise ConfigError(
                "c.UWS.audit_retention_days must be 0 (keep every event) or a number of days"
            )

    def _validate_token_scopes(self) -> None:
        from .scopes import check_token_scopes

        try:
            for client, value in self.token_client_scopes.items():
                check_token_scopes(f"c.UWS.token_client_scopes[{client!r}]", value)
            if self.globus_token_scopes:
                check_token_scopes("c.UWS.globus_token_scopes", self.globus_token_scopes)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    def _validate_root_dir(self, warnings: list[str]) -> None:
        root = self.root_dir
        if not root:
            raise ConfigError(
                "c.UWS.root_dir is not set: point it at the directory that holds the workspaces, e.g. /srv/uws/workspaces"
            )
        if not os.path.isabs(root):
            raise ConfigError(f"c.UWS.root_dir = {root!r} must be an absolute path")
        if not os.path.isdir(root):
            raise ConfigError(
                f"c.UWS.root_dir = {root!r} is not an existing directory: create it (mkdir -p {root}) or fix the setting"
            )
        if not os.access(root, os.W_OK | os.X_OK):
            raise ConfigError(
                f"c.UWS.root_dir = {root!r} is not writable by the uws service (uid {os.geteuid()}): fix its owner or mode"
            )
        if not self.single_account:
            # every ancestor must let the users through, or their jobs cannot enter their workspaces
            d = os.path.realpath(root)
            while d != "/":
                if not os.stat(d).st_mode & stat.S_IXOTH:
                    warnings.append(
                        f"c.UWS.root_dir = {root!r}: {d} is not traversable by other users (mode "
                        f"{oct(os.stat(d).st_mode & 0o777)}), so jobs running as workspace owners cannot enter their workspaces"
                    )
                    break
                d = os.path.dirname(d)

    def _validate_db_url(self) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.db_url)
        except ArgumentError as e:
            raise ConfigError(
                f"c.UWS.db_url = {self.db_url!r} is not a SQLAlchemy URL (e.g. sqlite:////srv/uws/uws.sqlite)"
            ) from e
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            parent = os.path.dirname(os.path.abspath(url.database)) or "."
            if not os.path.isdir(parent):
                raise ConfigError(
                    f"c.UWS.db_url = {self.db_url!r}: directory {parent} does not exist; create it or fix the URL"
                )


def load_config_file(config_file: str):
    """Read a jupyterhub_config.py the way the hub does; return the traitlets Config."""
    from traitlets.config.loader import PyFileConfigLoader

    path = os.path.abspath(config_file)
    loader = PyFileConfigLoader(os.path.basename(path), path=os.path.dirname(path))
    return loader.load_config()
