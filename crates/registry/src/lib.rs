//! Berth's OCI distribution client: auth, manifests, platforms, verified blob streams
#![deny(missing_docs)]
