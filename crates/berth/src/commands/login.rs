use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use berth_cli::{LoginArgs, LogoutArgs};
use berth_registry::credentials::{Credential, DockerConfig};
use berth_registry::Client;
use berth_types::DEFAULT_REGISTRY;

use crate::printer::Printer;
use crate::settings::Settings;

/// `https://host:5000/v1/` and `host:5000` name the same registry.
fn registry_host(server: Option<&str>) -> String {
    let s = server.unwrap_or(DEFAULT_REGISTRY);
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        h => h.to_string(),
    }
}

fn config_path(s: &Settings) -> std::path::PathBuf {
    s.docker_config
        .clone()
        .unwrap_or_else(DockerConfig::default_path)
}

pub fn login(s: &Settings, a: &LoginArgs) -> Result<u8> {
    let p = Printer::new(false);
    let host = registry_host(a.server.as_deref());
    let username = match &a.username {
        Some(u) => u.clone(),
        None => prompt("Username: ")?,
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut pw = String::new();
        std::io::stdin()
            .read_to_string(&mut pw)
            .context("cannot read the password from stdin")?;
        pw.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(pw) = &a.password {
        p.warn("Using --password via the CLI is insecure. Use --password-stdin.");
        pw.clone()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("cannot prompt for a password: stdin is not a terminal (use --password-stdin)");
        }
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password are required to log in to {host}");
    }
    let client = Client::new(s.registry_options(&a.registry))?;
    client.check_login(&host, &username, &password)?;
    let path = config_path(s);
    let mut cfg = DockerConfig::load(&path)?;
    cfg.set(&host, &Credential { username, password })?;
    cfg.save(&path)?;
    p.out("Login Succeeded");
    Ok(0)
}

pub fn logout(s: &Settings, a: &LogoutArgs) -> Result<u8> {
    let p = Printer::new(false);
    let host = registry_host(a.server.as_deref());
    let path = config_path(s);
    let mut cfg = DockerConfig::load(&path)?;
    if cfg.erase(&host)? {
        cfg.save(&path)?;
        p.out(format!("Removing login credentials for {host}"));
    } else {
        p.out(format!("Not logged in to {host}"));
    }
    Ok(0)
}

fn prompt(q: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("cannot prompt for credentials: stdin is not a terminal (use --username and --password-stdin)");
    }
    let mut e = std::io::stderr();
    let _ = write!(e, "{q}");
    let _ = e.flush();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(registry_host(None), "docker.io");
        assert_eq!(
            registry_host(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(registry_host(Some("127.0.0.1:5000")), "127.0.0.1:5000");
        assert_eq!(registry_host(Some("http://h:1/x")), "h:1");
    }
}
