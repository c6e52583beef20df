"""Login backed by an external account-provisioning API (the seed's "PSC API" pattern)."""

from jupyterhub.auth import Authenticator
from tornado import web


class UWSAccountAPIAuthenticator(Authenticator):
    """Placeholder registered as ``uws-account-api``: the account-API flow arrives with the identity capability.

    Until then a login attempt is refused with a message saying so, rather than failing obscurely.
    """

    async def authenticate(self, handler, data):
        raise web.HTTPError(
            403,
            "The account-API login is not available in this uws_hub version; ask the administrator to choose another login.",
        )
