"""agy_worker: the Python side of agy-bridge. Hosts google-antigravity agents for a Rust process."""

__version__ = "0.2.0"
# Bumped on any incompatible change to the wire protocol; Rust checks it at `initialize`.
PROTOCOL_VERSION = 2
