"""JupyterHub custom scopes and roles used by uws_hub.

Users hold the per-user scopes with a ``!user`` filter (their own resources only); the
``uws-admin`` role holds them unfiltered. The service computes the required scope for each
request from the resource's owner (``custom:uws:workspaces!user=<owner>``), so filtered grants
work; a fixed ``hub_scopes`` set on the service would reject them.
"""

from __future__ import annotations

PREFIX = "custom:uws"

READ_WORKSPACES = f"{PREFIX}:read:workspaces"
WORKSPACES = f"{PREFIX}:workspaces"
READ_JOBS = f"{PREFIX}:read:jobs"
JOBS = f"{PREFIX}:jobs"
EXTEND_JOBS = f"{PREFIX}:jobs:extend"
READ_SHARES = f"{PREFIX}:read:shares"
SHARES = f"{PREFIX}:shares"
READ_QUOTA = f"{PREFIX}:read:quota"
ADMIN_QUOTAS = f"{PREFIX}:admin:quotas"
SEARCH_USERS = f"{PREFIX}:users:search"
ADMIN_TOKENS = f"{PREFIX}:admin:tokens"
READ_AUDIT = f"{PREFIX}:read:audit"
READ_METRICS = f"{PREFIX}:read:metrics"

#: name -> definition, in the form of ``c.JupyterHub.custom_scopes``
CUSTOM_SCOPES: dict[str, dict] = {
    READ_WORKSPACES: {"description": "Read uws workspaces and their file listings."},
    WORKSPACES: {
        "description": "Create, change, upload to and delete uws workspaces.",
        "subscopes": [READ_WORKSPACES],
    },
    READ_JOBS: {"description": "Read uws jobs and their status."},
    EXTEND_JOBS: {"description": "Extend the time limit of running uws jobs."},
    JOBS: {"description": "Start and stop uws jobs.", "subscopes": [READ_JOBS, EXTEND_JOBS]},
    READ_SHARES: {"description": "Read uws workspace share invitations."},
    SHARES: {
        "description": "Share uws workspaces, accept, decline and cancel invitations.",
        "subscopes": [READ_SHARES],
    },
    READ_QUOTA: {"description": "Read uws disk and core-hour usage and limits."},
    ADMIN_QUOTAS: {
        "description": "Set uws disk and core-hour limits and read usage reports.",
        "subscopes": [READ_QUOTA],
    },
    SEARCH_USERS: {"description": "Search uws users by name (for share dialogs)."},
    ADMIN_TOKENS: {
        "description": "Trusted portal: exchange user_info for a JupyterHub token of that user."
    },
    READ_AUDIT: {"description": "Read the uws audit log."},
    READ_METRICS: {"description": "Read the uws service's Prometheus metrics."},
}

#: scopes every user holds on their own resources (granted with a ``!user`` filter)
USER_SCOPES = [WORKSPACES, JOBS, SHARES, READ_QUOTA]
#: scopes every user holds unfiltered (they are not about one user's resources)
USER_GLOBAL_SCOPES = [SEARCH_USERS]
#: the uws-admin role
ADMIN_SCOPES = [WORKSPACES, JOBS, SHARES, ADMIN_QUOTAS, SEARCH_USERS, READ_AUDIT, READ_METRICS]

#: what the uws service itself may do through the hub's REST API
SERVICE_HUB_SCOPES = [
    "list:users",
    "read:users",
    "read:users:name",
    "read:groups",
    "read:roles:users",
    "read:servers",
    "servers",  # start and stop job servers for users
    "admin:users",  # create the hub user a token is issued for (POST /api/tokens/)
    "tokens",  # issue that user's API token
    # live sharing of a running job through JupyterHub's shares (grant / list / revoke): the
    # service must itself hold the access it grants
    "shares",
    "read:shares",
    "access:servers",
    "read:groups:name",
]


def user_role_scopes(service_name: str) -> list[str]:
    """Scopes added to the hub's default ``user`` role: the person's own hub resources and
    everything a token of theirs carries by default (`token_api_scopes`)."""
    return ["self", *token_api_scopes(service_name)]


def token_api_scopes(service_name: str) -> list[str]:
    """What a token from ``POST /api/tokens/`` carries unless configured otherwise: the uws API
    and the person's own ``custom:uws:*`` scopes, nothing of the hub's own API (no servers, no
    profile, no new tokens). The hub expands ``!user`` to the token owner's name."""
    return [
        f"access:services!service={service_name}",
        *(f"{s}!user" for s in USER_SCOPES),
        *USER_GLOBAL_SCOPES,
    ]


def job_server_scopes(service_name: str) -> list[str]:
    """What a job server's own token (JUPYTERHUB_API_TOKEN) carries: JupyterHub's ``server``
    role (activity, access to itself) and, of the owner's uws scopes, only reading their jobs
    and extending them, so the session extension inside JupyterLab can (`uws_hub.labserver`)
    — anyone with a terminal in the server can read the token: it cannot start, stop or share
    jobs, nor touch workspaces."""
    return [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={service_name}",
        f"{READ_JOBS}!user",
        f"{EXTEND_JOBS}!user",
    ]


#: what the uws service needs in addition when the hub logs in with Globus: the people's auth
#: state (their refresh tokens), to renew the Globus tokens of running jobs
SERVICE_GLOBUS_HUB_SCOPES = ["admin:auth_state"]


def check_token_scopes(where: str, value: object) -> None:
    """Raise ValueError (naming `where`) unless `value` is a list of scope strings."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{where} must be a non-empty list of scopes")
    for s in value:
        if not isinstance(s, str) or not s or s != s.strip() or any(c.isspace() for c in s):
            raise ValueError(f"{where} has {s!r}, which is not a scope")
        base = s.split("!", 1)[0]
        if base.startswith(PREFIX + ":") and base not in CUSTOM_SCOPES:
            raise ValueError(
                f"{where} has {s!r}: there is no scope {base} (uws has {', '.join(CUSTOM_SCOPES)})"
            )


def admin_role_scopes(service_name: str) -> list[str]:
    return [f"access:services!service={service_name}", *ADMIN_SCOPES]


def for_user(scope: str, username: str) -> str:
    """The scope needed to act on `username`'s resources."""
    return f"{scope}!user={username}"
