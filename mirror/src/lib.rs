//! The make-mirror replication engine. Not built yet: see docs/mirror.md once it lands.
