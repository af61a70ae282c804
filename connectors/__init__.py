"""Built-in channel connectors (see ``channelsync.registry``)."""
