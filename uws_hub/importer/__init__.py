"""Importing a UWS site (its Django database and storage root) into uws_hub."""
