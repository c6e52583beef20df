"""Authenticators: every login ends at one POSIX/cluster account.

Thin subclasses of the ecosystem's authenticators, registered as ``jupyterhub.authenticators``
entry points (``uws-dev``, ``uws-local``, ``uws-globus``, ``uws-ldap``, ``uws-account-api``).
The identity-mapping mixin they share arrives with the identity capability.
"""
