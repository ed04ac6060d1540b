//! apt archive indexes: the `InRelease` file of a suite (hashes of its indexes) and
//! `Packages` files (one stanza per package, with the SHA-256 of its `.deb`).

use std::collections::HashMap;

use super::distribution::Distribution;

/// What `InRelease` says about one index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Expected SHA-256, lowercase hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub size: u64,
}

/// Environment variable that lets an expired index be used (loudly).
pub const ALLOW_EXPIRED_ENV: &str = "BPFLAB_ALLOW_EXPIRED_INDEX";

/// What a suite's (signed) `InRelease` says: which suite it is, until when it is valid,
/// and the hashes of its indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `Suite:` (`stable`, `oldstable-security`, `unstable`).
    pub suite: Option<String>,
    /// `Codename:` (`bookworm`, `bookworm-security`, `sid`).
    pub codename: Option<String>,
    /// `Valid-Until:`, seconds since 1970, when the archive sets one.
    pub valid_until: Option<i64>,
    /// The `SHA256:` section: path below `dists/<suite>/` → hash.
    pub sha256: HashMap<String, IndexEntry>,
}

impl Release {
    /// Parses the signed text of an `InRelease` (never the raw file: see
    /// [`crate::kernel::apt::signature::verify_inrelease`]).
    pub fn parse(text: &str) -> anyhow::Result<Release> {
        let field = |key: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let valid_until = match field("Valid-Until") {
            Some(date) => Some(parse_date(&date)?),
            None => None,
        };
        Ok(Release {
            suite: field("Suite"),
            codename: field("Codename"),
            valid_until,
            sha256: sha256_section(text),
        })
    }

    /// Checks that this is the suite that was asked for (a validly signed index of
    /// another suite, say an old stable one, must not stand in for it) and that it has not
    /// expired (an expired index may be an old one replayed to hold back fixes).
    pub fn check(
        &self,
        asked: &str,
        now_secs: i64,
        allow_expired: bool,
        distribution: Distribution,
    ) -> anyhow::Result<()> {
        let names = [self.suite.as_deref(), self.codename.as_deref()];
        anyhow::ensure!(
            names.contains(&Some(asked)),
            "the signed index served for suite {asked} is for another suite (Suite: {}, \
             Codename: {}): the mirror is misconfigured or tampered with; nothing was used",
            self.suite.as_deref().unwrap_or("none"),
            self.codename.as_deref().unwrap_or("none"),
        );
        if let Some(until) = self.valid_until.filter(|until| *until < now_secs) {
            let when = chrono::DateTime::from_timestamp(until, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| until.to_string());
            if allow_expired {
                crate::term::status(format!(
                    "WARNING: the index of {asked} expired on {when}; used anyway because \
                     {ALLOW_EXPIRED_ENV} is set"
                ));
            } else {
                anyhow::bail!(
                    "the index of {asked} expired on {when} (its Valid-Until): the mirror is \
                     out of date, or serving an old index on purpose. Choose another mirror \
                     with {}, or set {ALLOW_EXPIRED_ENV}=1 to use it anyway",
                    distribution.mirror_env()
                );
            }
        }
        Ok(())
    }
}

/// Whether the user allows expired indexes.
pub fn allow_expired() -> bool {
    std::env::var_os(ALLOW_EXPIRED_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Parses a Release file date (`Sat, 09 Aug 2025 09:16:30 UTC`, RFC 2822 with Debian's
/// `UTC` zone name) to seconds since 1970.
fn parse_date(date: &str) -> anyhow::Result<i64> {
    let rfc2822 = date.replace(" UTC", " +0000");
    chrono::DateTime::parse_from_rfc2822(&rfc2822)
        .map(|t| t.timestamp())
        .map_err(|e| anyhow::anyhow!("the index's date `{date}` does not parse: {e}"))
}

/// The `SHA256:` section of a Release/InRelease text: path below `dists/<suite>/` → hash.
fn sha256_section(text: &str) -> HashMap<String, IndexEntry> {
    let mut out = HashMap::new();
    let mut in_section = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_section = line.trim_end() == "SHA256:";
            continue;
        }
        if !in_section {
            continue;
        }
        let mut words = line.split_whitespace();
        if let (Some(hash), Some(size), Some(path)) = (words.next(), words.next(), words.next()) {
            if let Ok(size) = size.parse() {
                out.insert(
                    path.to_string(),
                    IndexEntry {
                        sha256: hash.to_ascii_lowercase(),
                        size,
                    },
                );
            }
        }
    }
    out
}

/// One binary package as the `Packages` index describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Debian version.
    pub version: String,
    /// Path below the mirror's base URL.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the `.deb`, lowercase hex.
    pub sha256: String,
}

/// Parses a `Packages` file, keeping the packages whose name `keep` accepts (the files
/// are large: most stanzas are skipped without being collected).
pub fn parse_packages(text: &str, keep: impl Fn(&str) -> bool) -> Vec<Package> {
    parse_packages_with(text, keep, &[])
        .into_iter()
        .map(|(package, _)| package)
        .collect()
}

/// [`parse_packages`], with the values of other fields of each kept stanza too
/// (`Depends`, `Provides`), in the order of `fields`; a field a stanza lacks is `None`.
pub fn parse_packages_with(
    text: &str,
    keep: impl Fn(&str) -> bool,
    fields: &[&str],
) -> Vec<(Package, Vec<Option<String>>)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let Some(name) = field("Package") else {
            continue;
        };
        if !keep(&name) {
            continue;
        }
        let (Some(version), Some(filename), Some(size), Some(sha256)) = (
            field("Version"),
            field("Filename"),
            field("Size"),
            field("SHA256"),
        ) else {
            continue;
        };
        let Ok(size) = size.parse() else { continue };
        let extra = fields.iter().map(|f| field(f)).collect();
        let package = Package {
            name,
            version,
            filename,
            size,
            sha256: sha256.to_ascii_lowercase(),
        };
        out.push((package, extra));
    }
    out
}

/// The package with the highest Debian version (dpkg's ordering), ties broken by name.
pub fn newest(packages: impl IntoIterator<Item = Package>) -> Option<Package> {
    packages.into_iter().max_by(|a, b| {
        let va = a.version.parse::<crate::kernel::apt::version::Version>();
        let vb = b.version.parse::<crate::kernel::apt::version::Version>();
        match (va, vb) {
            (Ok(va), Ok(vb)) => va.cmp(&vb).then_with(|| a.name.cmp(&b.name)),
            // An unparsable version never wins over a parsable one.
            (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
            (Err(_), Ok(_)) => std::cmp::Ordering::Less,
            (Err(_), Err(_)) => a.name.cmp(&b.name),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INRELEASE: &str = "\
Origin: Debian
Suite: stable
Codename: bookworm
Valid-Until: Mon, 07 Dec 2026 00:22:33 UTC
MD5Sum:
 0123456789abcdef0123456789abcdef  1000 main/binary-amd64/Packages.xz
SHA256:
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA  9000 main/binary-amd64/Packages
 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  1000 main/binary-amd64/Packages.xz
";

    #[test]
    fn reads_sha256_entries_only() {
        let hashes = Release::parse(INRELEASE).unwrap().sha256;
        assert_eq!(hashes.len(), 2);
        let xz = &hashes["main/binary-amd64/Packages.xz"];
        assert_eq!(xz.size, 1000);
        assert!(xz.sha256.starts_with("bbbb"));
        assert!(hashes["main/binary-amd64/Packages"]
            .sha256
            .starts_with("aaaa"));
    }

    #[test]
    fn the_suite_must_be_the_one_asked_for_and_not_expired() {
        let release = Release::parse(INRELEASE).unwrap();
        let before = 1_796_083_200; // 2026-12-01
        let after = before + 30 * 86_400;
        release
            .check("bookworm", before, false, Distribution::Debian)
            .unwrap();
        release
            .check("stable", before, false, Distribution::Debian)
            .unwrap();
        let err = release
            .check("trixie", before, false, Distribution::Debian)
            .unwrap_err();
        assert!(err.to_string().contains("for another suite"), "{err}");
        let err = release
            .check("bookworm", after, false, Distribution::Debian)
            .unwrap_err();
        assert!(
            err.to_string().contains("expired on 2026-12-07 00:22 UTC"),
            "{err}"
        );
        release
            .check("bookworm", after, true, Distribution::Debian)
            .unwrap();
        let undated = Release {
            valid_until: None,
            ..release
        };
        undated
            .check("bookworm", after, false, Distribution::Debian)
            .unwrap();
    }

    const PACKAGES: &str = "\
Package: linux-image-6.1.0-50-cloud-amd64-unsigned
Version: 6.1.176-1
Filename: pool/main/l/linux/linux-image-6.1.0-50-cloud-amd64-unsigned_6.1.176-1_amd64.deb
Size: 100
SHA256: 1111111111111111111111111111111111111111111111111111111111111111
Description: Linux 6.1 for x86-64 cloud
 continuation line

Package: linux-image-6.1.0-53-cloud-amd64-unsigned
Version: 6.1.187-1
Filename: pool/main/l/linux/linux-image-6.1.0-53-cloud-amd64-unsigned_6.1.187-1_amd64.deb
Size: 200
SHA256: 2222222222222222222222222222222222222222222222222222222222222222

Package: linux-image-6.1.0-53-cloud-amd64-dbg
Version: 6.1.187-1
Filename: pool/x.deb
Size: 300
SHA256: 3333333333333333333333333333333333333333333333333333333333333333

Package: broken-without-hash
Version: 1
Filename: pool/y.deb
Size: 1
";

    #[test]
    fn parses_stanzas_and_filters_by_name() {
        let pkgs = parse_packages(PACKAGES, |n| n.ends_with("-unsigned"));
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].size, 100);
        let all = parse_packages(PACKAGES, |_| true);
        assert_eq!(
            all.len(),
            3,
            "a stanza without SHA256 is unusable and dropped"
        );
    }

    #[test]
    fn newest_follows_dpkg_ordering() {
        let mk = |v: &str| Package {
            name: "p".into(),
            version: v.into(),
            filename: String::new(),
            size: 0,
            sha256: String::new(),
        };
        let pick = newest([mk("6.1.9-1"), mk("6.1.10-1"), mk("6.1.10~rc1-1")]).unwrap();
        assert_eq!(pick.version, "6.1.10-1");
        let pick = newest([mk("7.2.13-1"), mk("7.3~rc5-1~exp1")]).unwrap();
        assert_eq!(pick.version, "7.3~rc5-1~exp1");
        assert_eq!(newest(Vec::new()), None);
    }
}
