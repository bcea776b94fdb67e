"""Call records and their RPO: each region's PostgreSQL (CDR, CEL, recordings), streamed to a
standby in the other region, and the tools that promote, resync and reconcile them."""
