//! Which mirror of an archive to use: the user's choice, or what the host's apt already
//! uses.
//!
//! bpflab never carries a mirror's address of its own: a user who has apt configured for
//! the distribution (or sets the variables below) has everything bpflab needs.

use std::path::Path;

use super::distribution::Distribution;
use super::sources::{host_apt_entries, AptEntry};

/// The mirrors a distribution's suites are fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    /// Whose archive this is.
    pub distribution: Distribution,
    /// Main archive: every suite, except Debian's `-security` ones.
    pub archive: String,
    /// Debian's security archive (`<codename>-security` suites), when one is configured.
    pub security: Option<String>,
    /// Where the choice came from, to tell the user.
    pub origin: String,
}

/// No mirror of a distribution is configured anywhere bpflab looks. Kernels from that
/// archive are unavailable on this machine, which is not a failure of anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no {distribution} mirror configured: set {env}={example}{security}, or put \
     `{key}_mirror = \"{example}\"` in {config} (this host's apt sources name none{ports})"
)]
pub struct NotConfigured {
    /// Whose mirror is missing.
    pub distribution: Distribution,
    env: &'static str,
    example: String,
    security: String,
    key: &'static str,
    config: String,
    ports: &'static str,
}

impl NotConfigured {
    fn new(distribution: Distribution, config: &Path, saw_ports: bool) -> NotConfigured {
        NotConfigured {
            distribution,
            env: distribution.mirror_env(),
            example: distribution.example_mirror(),
            security: distribution
                .security_mirror_env()
                .map(|env| format!(" (and {env} for security updates)"))
                .unwrap_or_default(),
            key: distribution.key(),
            config: config.display().to_string(),
            ports: if saw_ports {
                ": only a ports archive, which has no amd64 packages"
            } else {
                ""
            },
        }
    }
}

impl Mirrors {
    /// The base URL serving `suite`.
    pub fn for_suite(&self, suite: &str) -> Option<&str> {
        match self.distribution.security_mirror_env() {
            Some(_) if suite.ends_with("-security") => self.security.as_deref(),
            _ => Some(&self.archive),
        }
    }

    /// Finds the mirrors of `distribution`: environment first, then `config` (bpflab's
    /// config file), then the host's apt sources. None anywhere is a [`NotConfigured`].
    pub fn discover(
        config: &crate::config::Config,
        distribution: Distribution,
    ) -> anyhow::Result<Mirrors> {
        let example = distribution.example_mirror();
        if let Some(archive) = env_url(distribution.mirror_env(), &example)? {
            let security = match distribution.security_mirror_env() {
                Some(env) => env_url(env, &example)?,
                None => None,
            };
            return Ok(Mirrors {
                distribution,
                archive,
                security,
                origin: format!("${}", distribution.mirror_env()),
            });
        }
        let (archive, security) = match distribution {
            Distribution::Debian => (&config.debian_mirror, &config.debian_security_mirror),
            Distribution::Ubuntu => (&config.ubuntu_mirror, &None),
        };
        if let Some(archive) = archive {
            let setting = |key: &str| format!("`{key}` in {}", config.path.display());
            let key = format!("{}_mirror", distribution.key());
            return Ok(Mirrors {
                distribution,
                archive: url(archive, &setting(&key), &example)?,
                security: match security {
                    Some(s) => Some(url(s, &setting("debian_security_mirror"), &example)?),
                    None => None,
                },
                origin: format!("{}", config.path.display()),
            });
        }
        let entries = host_apt_entries(Path::new("/etc/apt"))?;
        from_entries(&entries, distribution).ok_or_else(|| {
            let saw_ports = entries.iter().any(|e| {
                Distribution::is_ports_archive(&e.uri)
                    && e.suites.iter().any(|s| distribution.owns_suite(s))
            });
            NotConfigured::new(distribution, &config.path, saw_ports).into()
        })
    }
}

/// The mirror URL in environment variable `env`; unset or empty is none.
fn env_url(env: &str, example: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(env) {
        Ok(value) if !value.trim().is_empty() => {
            Ok(Some(url(&value, &format!("${env}"), example)?))
        }
        _ => Ok(None),
    }
}

/// `value` as a mirror's base URL, or an error saying what `setting` should be.
fn url(value: &str, setting: &str, example: &str) -> anyhow::Result<String> {
    let value = value.trim();
    anyhow::ensure!(
        value.starts_with("http://") || value.starts_with("https://"),
        "{setting} is `{value}`, which is no mirror URL: give one like {example} (the base \
         of the archive, where its dists/ and pool/ are)"
    );
    Ok(trim_slash(value))
}

/// Picks `distribution`'s main and security mirrors out of apt's entries (other
/// distributions' and vendors' repositories, and ports archives, are passed over).
pub fn from_entries(entries: &[AptEntry], distribution: Distribution) -> Option<Mirrors> {
    let own = |e: &&AptEntry| {
        !Distribution::is_ports_archive(&e.uri)
            && e.suites.iter().any(|s| distribution.owns_suite(s))
    };
    let archive = entries.iter().filter(own).find(|e| {
        e.suites
            .iter()
            .any(|s| !s.contains("-security") && !s.contains('/'))
    })?;
    let security = distribution.security_mirror_env().and_then(|_| {
        entries
            .iter()
            .filter(own)
            .find(|e| e.suites.iter().any(|s| s.ends_with("-security")))
    });
    Some(Mirrors {
        distribution,
        archive: trim_slash(&archive.uri),
        security: security.map(|e| trim_slash(&e.uri)),
        origin: "the host's apt sources".into(),
    })
}

fn trim_slash(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::apt::sources::{parse_deb822, parse_one_line};

    const DEB822: &str = "\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main

Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main
";

    #[test]
    fn finds_main_and_security_mirrors_in_deb822() {
        let m = from_entries(&parse_deb822(DEB822), Distribution::Debian).unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://mirror.example/debian-security")
        );
        assert_eq!(m.for_suite("sid"), Some("http://mirror.example/debian"));
        assert_eq!(m.for_suite("bullseye-security"), m.security.as_deref());
    }

    #[test]
    fn reads_one_line_sources_and_skips_vendor_repos() {
        let text = "\
deb https://vendor.example/apt cloud-sdk-bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bullseye main # comment
# deb http://commented.example/debian sid main
deb http://mirror.example/debian-security bullseye-security main
";
        let entries = parse_one_line(text);
        assert_eq!(entries.len(), 3);
        let m = from_entries(&entries, Distribution::Debian).unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn no_debian_entry_means_no_mirror() {
        let entries = parse_one_line("deb https://vendor.example/apt nodistro main\n");
        assert_eq!(from_entries(&entries, Distribution::Debian), None);
        assert_eq!(from_entries(&entries, Distribution::Ubuntu), None);
    }

    /// An Ubuntu 24.04 host: deb822 `ubuntu.sources`, main archive and security archive.
    const UBUNTU_SOURCES: &str = "\
Types: deb
URIs: http://mirror.example/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.example/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
";

    #[test]
    fn an_ubuntu_host_names_its_mirror_and_no_debian_one() {
        let entries = parse_deb822(UBUNTU_SOURCES);
        let m = from_entries(&entries, Distribution::Ubuntu).unwrap();
        assert_eq!(m.archive, "http://mirror.example/ubuntu");
        // Ubuntu's main archive serves every pocket, -security included.
        assert_eq!(m.security, None);
        assert_eq!(
            m.for_suite("xenial-security"),
            Some("http://mirror.example/ubuntu")
        );
        assert_eq!(
            m.for_suite("focal-updates"),
            Some("http://mirror.example/ubuntu")
        );
        assert_eq!(from_entries(&entries, Distribution::Debian), None);
        // And a Debian host names no Ubuntu mirror.
        assert_eq!(
            from_entries(&parse_deb822(DEB822), Distribution::Ubuntu),
            None
        );
    }

    #[test]
    fn a_mirror_setting_must_be_a_url() {
        let example = Distribution::Ubuntu.example_mirror();
        assert_eq!(
            url(" http://mirror.example/ubuntu/ ", "X", &example).unwrap(),
            "http://mirror.example/ubuntu"
        );
        let err = url("mirror.example/ubuntu", "$BPFLAB_UBUNTU_MIRROR", &example).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "$BPFLAB_UBUNTU_MIRROR is `mirror.example/ubuntu`, which is no mirror URL: \
                 give one like http://<mirror>/ubuntu"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_older_ubuntu_hosts_one_line_sources_are_read() {
        let text = "\
deb http://mirror.example/ubuntu/ jammy main restricted
deb http://mirror.example/ubuntu/ jammy-updates main restricted
deb http://security.example/ubuntu jammy-security main
";
        let m = from_entries(&parse_one_line(text), Distribution::Ubuntu).unwrap();
        assert_eq!(m.archive, "http://mirror.example/ubuntu");
    }

    /// An arm64 Ubuntu host's apt names only the ports archive, which has no amd64
    /// kernels: no mirror, and the message says why.
    #[test]
    fn a_ports_archive_is_no_ubuntu_mirror() {
        let entries = parse_one_line("deb http://ports.example/ubuntu-ports noble main universe\n");
        assert_eq!(from_entries(&entries, Distribution::Ubuntu), None);
        let message =
            NotConfigured::new(Distribution::Ubuntu, Path::new("/c/config.toml"), true).to_string();
        assert!(
            message.starts_with(
                "no Ubuntu mirror configured: set BPFLAB_UBUNTU_MIRROR=http://<mirror>/ubuntu, \
                 or put `ubuntu_mirror = \"http://<mirror>/ubuntu\"` in /c/config.toml"
            ),
            "{message}"
        );
        assert!(message.contains("only a ports archive"), "{message}");
        let debian = NotConfigured::new(Distribution::Debian, Path::new("/c/config.toml"), false)
            .to_string();
        assert!(
            debian.contains("(and BPFLAB_DEBIAN_SECURITY_MIRROR for security updates)"),
            "{debian}"
        );
    }
}
