"""Globus login (oauthenticator's GlobusOAuthenticator)."""

from oauthenticator.globus import GlobusOAuthenticator


class UWSGlobusAuthenticator(GlobusOAuthenticator):
    """Globus login; identity mapping and safe token hand-off join with the identity capability."""
