"""channelsync as a running service: the application object, the daemon (scheduling,
systemd, reloads), its HTTP endpoints (metrics, health, webhooks), alerts, observability,
logging, and the read-only reports that status and explain show. Built on the sync core."""
