//! Berth's command line: flags, help and environment variable names
#![deny(missing_docs)]
