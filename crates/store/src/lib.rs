//! Berth's on-disk image store: content-addressed blobs, safe layer unpack, image index
#![deny(missing_docs)]
