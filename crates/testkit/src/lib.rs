//! Berth's test fixtures: local registry, tiny images, unprivileged user
#![deny(missing_docs)]
