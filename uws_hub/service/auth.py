"""How the uws service identifies who is asking.

JupyterHub's HubOAuth does the work (token in ``Authorization: token|Bearer``, or the service's
OAuth cookie with XSRF checks for browsers); we add ``UWS-Authorization: Token <hub token>``, the
header existing UWS clients send.
"""

from __future__ import annotations

from jupyterhub.services.auth import HubOAuth


class UWSHubAuth(HubOAuth):
    uws_header_name = "UWS-Authorization"

    def get_token(self, handler, in_cookie=True):
        token = super().get_token(handler, in_cookie=False)
        if not token:
            # as UWS: two words split on one space; the first (clients send "Token") is ignored
            words = handler.request.headers.get(self.uws_header_name, "").split(" ")
            if len(words) == 2 and words[1]:
                token = words[1]
        if not token and in_cookie:
            token = self._get_token_cookie(handler)
        return token
