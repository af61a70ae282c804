"""After-sales follow-ups: due by rule after delivery or shipping, sent once.

``rules`` finds the orders a ``[[followup]]`` rule covers and when each is due, ``render``
fills the rule's template (sandboxed Jinja2) with the order's fields, ``send`` delivers
through apprise URLs and an outbox file, ``run`` records each follow-up before sending it
and retries what fails, and ``queries`` reads what was recorded. Nothing is imported here:
the CLI and the daemon import the module they need.
"""
