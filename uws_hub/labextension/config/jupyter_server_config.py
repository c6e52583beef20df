# Loaded by uws_hub's job servers only: the spawner puts this directory on JUPYTER_CONFIG_PATH.
# It turns on the session extension (the time left, warnings and Extend inside JupyterLab): the
# server side (uws_hub.labserver) and the prebuilt lab extension next to this directory.
import os

c = get_config()  # noqa: F821 (given by the config loader)
c.ServerApp.jpserver_extensions.update({"uws_hub.labserver": True})
c.LabApp.extra_labextensions_path = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
