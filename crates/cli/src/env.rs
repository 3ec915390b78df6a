//! The one list of environment variables Berth reads.

/// Names of the environment variables Berth reads, so none is spelled twice.
pub struct EnvVars;

impl EnvVars {
    /// Overrides the image store directory (`--root`).
    pub const BERTH_ROOT: &'static str = "BERTH_ROOT";
    /// An extra config file read after the system and user ones (`--config`).
    pub const BERTH_CONFIG: &'static str = "BERTH_CONFIG";
    /// Directory holding Docker's `config.json` with registry credentials.
    pub const DOCKER_CONFIG: &'static str = "DOCKER_CONFIG";
    /// Fixed timestamp for reproducible image creation.
    pub const SOURCE_DATE_EPOCH: &'static str = "SOURCE_DATE_EPOCH";
    /// Base directory for user configuration (`~/.config`).
    pub const XDG_CONFIG_HOME: &'static str = "XDG_CONFIG_HOME";
    /// The caller's home directory.
    pub const HOME: &'static str = "HOME";
}
