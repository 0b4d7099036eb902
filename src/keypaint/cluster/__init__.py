"""`keypaint serve --ray`: the server as a Ray Serve application (an ingress and Painter replicas sharing
jobs in PostgreSQL), and `keypaint generate --prompts FILE --ray` over Ray Data. Ray is imported here only."""
