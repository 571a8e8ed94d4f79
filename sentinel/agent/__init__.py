"""The agent daemon: scheduled baseline runs, utilisation samples and inventory, signed and pushed.

Parts: `config` (settings), `enroll` (identity: key + agent id), `client` (HTTP to the collector),
`spool` (durable queue), `runner` (a baseline run in a low-priority child process), `sampler` and
`inventory` (psutil facts), `scheduler` (APScheduler jobs), `daemon` (wires it all together).
The agent stays lean at rest: it never imports the web framework or the ORM, and the check engine
only ever loads in the short-lived child process that runs a baseline.
"""
