"""Local stand-ins for the external services our authenticators talk to, for tests.

Each is a real HTTP server on 127.0.0.1 (an ephemeral port) that speaks the real protocol:

- :class:`standins.globus.GlobusStandin`: Globus Auth (OAuth2/OIDC: authorize, token with the
  authorization-code, refresh, client-credentials and dependent-token grants, userinfo,
  introspection, revocation) and the Globus Groups API's ``my_groups``.
- :class:`standins.accountapi.AccountAPIStandin`: a GraphQL account-provisioning API of the
  "PSC API" kind (users, allocations, adding users).

In-process (pytest)::

    from standins.globus import GlobusStandin

    with GlobusStandin() as globus:
        globus.add_client("cid", "secret", ["http://127.0.0.1:8000/hub/oauth_callback"])
        globus.set_login({"username": "alice@uni-a.edu", "email": "alice@uni-a.edu"})
        ...

As a subprocess: ``cd tests && python -m standins.globus --port 0`` prints ``{"url": ...}`` when
ready; test controls are then ``POST <url>/_standin/<method>`` with ``{"args": [], "kwargs": {}}``.
"""

__all__ = ["AccountAPIStandin", "GlobusStandin"]


def __getattr__(name: str):
    # imported lazily so that ``python -m standins.globus`` does not import the module twice
    if name == "GlobusStandin":
        from .globus import GlobusStandin

        return GlobusStandin
    if name == "AccountAPIStandin":
        from .accountapi import AccountAPIStandin

        return AccountAPIStandin
    raise AttributeError(name)
