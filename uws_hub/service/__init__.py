"""The uws service: a hub-managed tornado app serving /services/uws/ (API, pages, reconcilers)."""
