"""Helpdesk connectors: signed webhooks in, write-back through each vendor's REST API out, via an outbox."""
