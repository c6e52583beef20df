"""The hub's spawner: one named server per job, built from the job's resource.

`UWSJobSpawner` is a wrapspawner `WrapSpawner`. Before a spawn it loads and checks the Job row
(a bad or foreign job is refused with a clear `SpawnException`), then builds the child for the
job's resource — `UWSLocalSpawner` or `UWSSlurmSpawner` — with that resource's timeouts.

wrapspawner 1.0.1's defects are fixed here: the child is built without the deprecated ``db``
argument and gets only the hub's runtime values (user, server, token, ...) copied from the
wrapper, while its own configuration (``c.UWSSlurmSpawner.*`` etc.) stays its own instead of
being overwritten by the wrapper's; ``port`` and ``ip`` stay linked (batchspawner's API sets the
port on the wrapper); the resource kind is saved in the state, so a hub restart rebuilds the
right child, and stopping clears the child's state with the wrapper's.
"""

from __future__ import annotations

import asyncio
import inspect

from jupyterhub.spawner import SpawnException
from traitlets import Type, default, directional_link
from wrapspawner import WrapSpawner

from .. import scopes
from ..config import UWS
from . import jobctx
from .local import UWSLocalSpawner
from .metrics import SPAWNER_STARTS
from .slurm import UWSSlurmSpawner

#: wrapper traits never handed to the child (config, wrapper machinery, deprecated db)
_NOT_COPIED = {
    "config",
    "parent",
    "log",
    "child_class",
    "child_config",
    "child_state",
    "child_spawner",
    "db",
    "_deprecated_db_session",
}


class UWSJobSpawner(WrapSpawner):
    """Starts each job with the spawner of its resource (local process or Slurm job)."""

    local_class = Type(
        UWSLocalSpawner, config=True, help="Spawner class for resources of kind 'local'."
    )
    slurm_class = Type(
        UWSSlurmSpawner, config=True, help="Spawner class for resources of kind 'slurm'."
    )

    _job_ctx = None
    _kind = ""

    @default("apply_user_options")
    def _no_user_options(self):
        # user_options carry only the job id, read by run_pre_spawn_hook; nothing to apply
        return lambda spawner, user_options: None

    @default("server_token_scopes")
    def _default_server_token_scopes(self) -> list[str]:
        # the hub asks the wrapper (not the child) for them when it makes the server's token
        return scopes.job_server_scopes(self.uws.service_name)

    @property
    def uws(self) -> UWS:
        if getattr(self, "_uws", None) is None:
            self._uws = UWS(config=self.config)
        return self._uws

    def _class_for(self, kind: str):
        return self.slurm_class if kind == "slurm" else self.local_class

    async def run_pre_spawn_hook(self):
        """Load and check the job (refusing a bad or foreign one), pick the child spawner class
        for its resource and take the resource's timeouts; then a site's own hook."""
        try:
            ctx = await asyncio.to_thread(
                jobctx.load_job, self.uws, self.user.name, self.name, self.user_options
            )
        except SpawnException:
            SPAWNER_STARTS.labels("none", "refused").inc()  # no job, so no resource kind
            raise
        self._job_ctx, self._kind = ctx, ctx.resource.kind
        self.child_class = self._class_for(self._kind)
        self.child_config = {}
        # the hub reads these from the wrapper when it waits for start() and for the server
        default_timeout = 600 if self._kind == "slurm" else 120
        self.start_timeout = ctx.resource.start_timeout or default_timeout
        self.http_timeout = ctx.resource.start_timeout or default_timeout
        result = super().run_pre_spawn_hook()  # a site's c.Spawner.pre_spawn_hook, if any
        if inspect.isawaitable(result):
            await result

    def construct_child(self):
        """The child spawner, built once: the hub's runtime values copied from the wrapper,
        its own configuration kept, its saved state loaded."""
        if self.child_spawner is None:
            child_traits = self.child_class.class_traits()
            kwargs = {}
            # values the hub set on the wrapper (not defaults, not configuration)
            for name, value in self._trait_values.items():
                trait = child_traits.get(name)
                if name in _NOT_COPIED or trait is None or trait.metadata.get("config"):
                    continue
                kwargs[name] = value
            self.log.debug(
                "job spawner: building %s with %s", self.child_class.__name__, sorted(kwargs)
            )
            self.child_spawner = self.child_class(config=self.config, **kwargs)
            # a fresh child holds no server state; clear_state() also empties api_token, so the
            # hub's values are applied again afterwards
            self.child_spawner.clear_state()
            for name, value in kwargs.items():
                setattr(self.child_spawner, name, value)
            if self.child_state:
                self.child_spawner.load_state(self.child_state)
            for name in ("port", "ip"):
                directional_link((self, name), (self.child_spawner, name))
        return self.child_spawner

    async def start(self):
        """Start the job with the child spawner, bound to the checked job."""
        child = self.construct_child()
        # the resource's timeouts hold for the child too (it waits for its server itself)
        child.start_timeout, child.http_timeout = self.start_timeout, self.http_timeout
        child.bind_job(self._job_ctx)
        # what the authenticator's pre_spawn_start gave the wrapper (configuration is not copied)
        child.environment = {**child.environment, **self.environment}
        child.uws_private_files = dict(getattr(self, "uws_private_files", None) or {})
        child.uws_spawn_finished = lambda: self.ready  # the hub routes the wrapper's server
        return await child.start()

    async def progress(self):
        """The child's progress; until the child exists (the job is still being checked),
        nothing — instead of wrapspawner's RuntimeError."""
        while self.child_spawner is None:
            if not self._spawn_pending:
                return
            await asyncio.sleep(0.2)
        async for event in self.child_spawner.progress():
            yield event

    def get_state(self):
        state = super().get_state()
        if self._kind:
            state["uws_kind"] = self._kind
        return state

    def load_child_class(self, state):
        self._kind = state.get("uws_kind", "")
        self.child_class = self._class_for(self._kind)

    def clear_state(self):
        super().clear_state()
        self._kind = ""
