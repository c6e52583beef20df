"""How the uws service identifies who is asking.

JupyterHub's HubOAuth does the work (token in ``Authorization: token|Bearer``, or the service's
OAuth cookie with XSRF checks for browsers); we add ``UWS-Authorization: Token <hub token>``, the
header existing UWS clients send.
"""

from __future__ import annotations

import re

from jupyterhub.services.auth import HubOAuth


class UWSHubAuth(HubOAuth):
    uws_header_name = "UWS-Authorization"
    uws_header_pat = re.compile(r"(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)

    def get_token(self, handler, in_cookie=True):
        token = super().get_token(handler, in_cookie=False)
        if not token:
            m = self.uws_header_pat.match(handler.request.headers.get(self.uws_header_name, ""))
            if m:
                token = m.group(1)
        if not token and in_cookie:
            token = self._get_token_cookie(handler)
        return token
