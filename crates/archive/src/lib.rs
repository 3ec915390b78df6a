//! Berth's image archives: docker-archive and OCI layout tarballs
#![deny(missing_docs)]
