"""Authenticators: every login ends at one POSIX/cluster account.

Thin subclasses of the ecosystem's authenticators, registered as ``jupyterhub.authenticators``
entry points: ``uws-dev`` (development login), ``uws-local`` (PAM), ``uws-ldap``
(ldapauthenticator), ``uws-globus`` (oauthenticator's Globus) and ``uws-account-api`` (Globus
login, account from an account-provisioning service). They share `mixin.UWSIdentityMixin`,
which maps the proven identity to an account with `mapping.map_identity` (see
docs/identity/).
"""
