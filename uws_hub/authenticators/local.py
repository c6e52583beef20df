"""Local system accounts (PAM), optionally created at first login."""

from jupyterhub.auth import PAMAuthenticator


class UWSLocalAuthenticator(PAMAuthenticator):
    """PAM login for the machine's own accounts; identity mapping joins with the identity capability."""
