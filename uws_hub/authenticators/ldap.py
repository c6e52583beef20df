"""LDAP login (ldapauthenticator)."""

from ldapauthenticator import LDAPAuthenticator


class UWSLDAPAuthenticator(LDAPAuthenticator):
    """LDAP login; off-loop calls and uid/gid mapping join with the identity capability."""
