//! Which Debian mirror to use: the user's choice, or what the host's apt already uses.
//!
//! bpflab never carries a mirror's address of its own: a user who has apt configured
//! (or sets the variables below) has everything bpflab needs.

use std::path::Path;

use anyhow::Context as _;

/// Environment variable naming the main archive mirror (e.g. `http://host/debian`).
pub const MIRROR_ENV: &str = "BPFLAB_DEBIAN_MIRROR";
/// Environment variable naming the security archive mirror.
pub const SECURITY_MIRROR_ENV: &str = "BPFLAB_DEBIAN_SECURITY_MIRROR";

/// The mirrors suites are fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    /// Main archive: stable, backports, testing, sid, experimental suites.
    pub archive: String,
    /// Security archive (`<codename>-security` suites), when one is configured.
    pub security: Option<String>,
    /// Where the choice came from, to tell the user.
    pub origin: String,
}

impl Mirrors {
    /// The base URL serving `suite`.
    pub fn for_suite(&self, suite: &str) -> Option<&str> {
        if suite.ends_with("-security") {
            self.security.as_deref()
        } else {
            Some(&self.archive)
        }
    }

    /// Finds the mirrors: environment first, then `config` (bpflab's config file), then
    /// the host's apt sources.
    pub fn discover(config: &crate::config::Config) -> anyhow::Result<Mirrors> {
        if let Ok(archive) = std::env::var(MIRROR_ENV) {
            return Ok(Mirrors {
                archive: trim_slash(&archive),
                security: std::env::var(SECURITY_MIRROR_ENV)
                    .ok()
                    .map(|s| trim_slash(&s)),
                origin: format!("${MIRROR_ENV}"),
            });
        }
        if let Some(archive) = &config.debian_mirror {
            return Ok(Mirrors {
                archive: trim_slash(archive),
                security: config.debian_security_mirror.as_deref().map(trim_slash),
                origin: format!("{}", config.path.display()),
            });
        }
        let mut entries = Vec::new();
        for path in apt_source_files(Path::new("/etc/apt")) {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if path.extension().is_some_and(|e| e == "sources") {
                entries.extend(parse_deb822(&text));
            } else {
                entries.extend(parse_one_line(&text));
            }
        }
        from_entries(&entries).ok_or_else(|| {
            anyhow::anyhow!(
                "no Debian mirror found in /etc/apt; set {MIRROR_ENV}=<mirror URL>/debian \
                 (and {SECURITY_MIRROR_ENV} for security updates), or put `debian_mirror = \"...\"` \
                 in {}",
                config.path.display()
            )
        })
    }
}

/// One apt source: a base URI and the suites it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptEntry {
    /// Base URI.
    pub uri: String,
    /// Suites (`bookworm`, `bookworm-security`).
    pub suites: Vec<String>,
}

/// Debian's own release names; other repositories on the host (vendors' apt repos) are
/// recognised by not using them.
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "experimental",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];

fn is_debian_suite(suite: &str) -> bool {
    let base = suite.split(['-', '/']).next().unwrap_or(suite);
    DEBIAN_SUITES.contains(&base)
}

/// Picks the main and security mirrors out of apt's entries.
pub fn from_entries(entries: &[AptEntry]) -> Option<Mirrors> {
    let debian = |e: &&AptEntry| e.suites.iter().any(|s| is_debian_suite(s));
    let archive = entries.iter().filter(debian).find(|e| {
        e.suites
            .iter()
            .any(|s| !s.contains("-security") && !s.contains('/'))
    })?;
    let security = entries
        .iter()
        .filter(debian)
        .find(|e| e.suites.iter().any(|s| s.ends_with("-security")));
    Some(Mirrors {
        archive: trim_slash(&archive.uri),
        security: security.map(|e| trim_slash(&e.uri)),
        origin: "the host's apt sources".into(),
    })
}

/// Parses deb822 `.sources` text (stanzas of `Types:`, `URIs:`, `Suites:`).
pub fn parse_deb822(text: &str) -> Vec<AptEntry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let words = || {
                value
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types = words(),
                "uris" => uris = words(),
                "suites" => suites = words(),
                "enabled" => enabled = value.trim() != "no",
                _ => {}
            }
        }
        if enabled && types.iter().any(|t| t == "deb") {
            out.extend(uris.into_iter().map(|uri| AptEntry {
                uri,
                suites: suites.clone(),
            }));
        }
    }
    out
}

/// Parses one-line `sources.list` text (`deb [opts] uri suite components...`).
pub fn parse_one_line(text: &str) -> Vec<AptEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => rest = rest[end + 1..].trim_start(),
                None => continue,
            }
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(AptEntry {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    out
}

fn apt_source_files(etc_apt: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut extra: Vec<_> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files.retain(|p| p.is_file());
    files
}

fn trim_slash(s: &str) -> String {
    s.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let m = from_entries(&parse_deb822(DEB822)).unwrap();
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
        let m = from_entries(&entries).unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn no_debian_entry_means_no_mirror() {
        let entries = parse_one_line("deb https://vendor.example/apt nodistro main\n");
        assert_eq!(from_entries(&entries), None);
    }

    #[test]
    fn disabled_stanzas_are_ignored() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: sid\nEnabled: no\n";
        assert!(parse_deb822(text).is_empty());
    }
}
