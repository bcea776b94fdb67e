"""The shared core, the bottom layer: everything here imports only the standard library, its
third-party dependencies and other `core` modules (never `lab`, `agents` or `chaos`)."""
