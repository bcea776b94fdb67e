"""The supporting tier: small stand-ins for the services a contact center leans on.

- `lab.deps.idp` — identity provider: agents log in before they register (`python -m lab.deps.idp`).
- `lab.deps.crm` — CRM: the customer card shown to an agent when a call arrives (`python -m lab.deps.crm`).

Both are flat aiohttp apps with a `make_app()` for tests, `/healthz` and a Prometheus `/metrics`
on their own registry. Faults reach them through the Toxiproxy-API proxy, not through code here.
"""
