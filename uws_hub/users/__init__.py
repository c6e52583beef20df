"""People: the uws user records (`accounts`: created on first sight, their POSIX account,
search), how a login's identity maps to one (`mapping`), and API tokens issued to them in
exchange for a portal's or Globus's credential (`tokens`)."""
