//! Debian archive indexes: the `InRelease` file of a suite (hashes of its indexes) and
//! `Packages` files (one stanza per package, with the SHA-256 of its `.deb`).

use std::collections::HashMap;

/// What `InRelease` says about one index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Expected SHA-256, lowercase hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub size: u64,
}

/// The `SHA256:` section of a Release/InRelease file: path below `dists/<suite>/` → hash.
pub fn release_sha256(text: &str) -> HashMap<String, IndexEntry> {
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
        out.push(Package {
            name,
            version,
            filename,
            size,
            sha256: sha256.to_ascii_lowercase(),
        });
    }
    out
}

/// The package with the highest Debian version (dpkg's ordering), ties broken by name.
pub fn newest(packages: impl IntoIterator<Item = Package>) -> Option<Package> {
    packages.into_iter().max_by(|a, b| {
        let va = a.version.parse::<debversion::Version>();
        let vb = b.version.parse::<debversion::Version>();
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
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Suite: stable
MD5Sum:
 0123456789abcdef0123456789abcdef  1000 main/binary-amd64/Packages.xz
SHA256:
 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA  9000 main/binary-amd64/Packages
 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  1000 main/binary-amd64/Packages.xz
-----BEGIN PGP SIGNATURE-----
";

    #[test]
    fn reads_sha256_entries_only() {
        let hashes = release_sha256(INRELEASE);
        assert_eq!(hashes.len(), 2);
        let xz = &hashes["main/binary-amd64/Packages.xz"];
        assert_eq!(xz.size, 1000);
        assert!(xz.sha256.starts_with("bbbb"));
        assert!(hashes["main/binary-amd64/Packages"]
            .sha256
            .starts_with("aaaa"));
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
