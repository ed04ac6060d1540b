//! The host's apt sources (`/etc/apt/sources.list`, `sources.list.d/*.list` and
//! `*.sources`), read for the mirrors they name: the one-line format and deb822.

use std::path::Path;

use anyhow::Context as _;

/// One apt source: a base URI and the suites it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptEntry {
    /// Base URI.
    pub uri: String,
    /// Suites (`bookworm`, `bookworm-security`).
    pub suites: Vec<String>,
}

/// Every apt source of the host, from `sources.list` and `sources.list.d/`.
pub fn host_apt_entries(etc_apt: &Path) -> anyhow::Result<Vec<AptEntry>> {
    let mut entries = Vec::new();
    for path in apt_source_files(etc_apt) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sources") {
            entries.extend(parse_deb822(&text));
        } else {
            entries.extend(parse_one_line(&text));
        }
    }
    Ok(entries)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_stanzas_are_ignored() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: sid\nEnabled: no\n";
        assert!(parse_deb822(text).is_empty());
    }

    #[test]
    fn one_line_options_and_comments_are_passed_over() {
        let entries = parse_one_line(
            "deb [arch=amd64 signed-by=/k.gpg] http://m.example/ubuntu noble main # c\n\
             # deb http://commented.example/ubuntu jammy main\ndeb-src http://m.example/ubuntu noble main\n",
        );
        assert_eq!(
            entries,
            [AptEntry {
                uri: "http://m.example/ubuntu".into(),
                suites: vec!["noble".into()],
            }]
        );
    }
}
