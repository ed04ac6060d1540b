//! Which dependencies the host already has, so that only what it lacks is unpacked.
//!
//! The rule: glibc (`libc6`) is always the host's (the release was chosen so that it can
//! be). Any other package counts as the host's when dpkg says it is installed at a version
//! the dependency accepts and every file dpkg installed for it is still there: a package
//! whose files were removed by hand, or are hidden, is not relied on. A host without dpkg
//! (not Debian or Ubuntu) has nothing else bpflab can rely on by name: everything else is
//! unpacked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The host's installed packages, as dpkg records them.
#[derive(Debug, Clone, Default)]
pub struct HostPackages {
    /// Name → (version, arch).
    installed: HashMap<String, (String, String)>,
    /// dpkg's database (`/var/lib/dpkg`), for the lists of installed files.
    info: PathBuf,
}

/// The packages of glibc, which the host always provides.
const HOST_LIBC: &[&str] = &["libc6"];

impl HostPackages {
    /// Reads dpkg's database at `dpkg` (`/var/lib/dpkg`); none there is a host without
    /// dpkg.
    pub fn read(dpkg: &Path) -> HostPackages {
        let text = std::fs::read_to_string(dpkg.join("status")).unwrap_or_default();
        HostPackages {
            installed: parse_status(&text),
            info: dpkg.join("info"),
        }
    }

    /// Whether the host satisfies the dependency `name` with its `constraint`
    /// (`>= 2.67.3`, or empty).
    pub fn satisfies(&self, name: &str, constraint: &str) -> bool {
        if HOST_LIBC.contains(&name) {
            return true;
        }
        let Some((version, arch)) = self.installed.get(name) else {
            return false;
        };
        version_matches(version, constraint) && self.files_present(name, arch)
    }

    /// Whether every file dpkg lists for the package is there (a directory, or a file or
    /// link that resolves to one).
    fn files_present(&self, name: &str, arch: &str) -> bool {
        let list = [format!("{name}:{arch}.list"), format!("{name}.list")]
            .into_iter()
            .find_map(|file| std::fs::read_to_string(self.info.join(file)).ok());
        let Some(list) = list else {
            return false;
        };
        list.lines()
            .filter(|l| l.starts_with("/usr") || l.starts_with("/lib"))
            .all(|path| std::fs::metadata(path).is_ok_and(|m| m.is_dir() || m.is_file()))
    }
}

/// Installed packages in dpkg's `status`: name → (version, arch).
fn parse_status(text: &str) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(": "))
                    .map(str::trim)
            })
        };
        let (Some(name), Some(status), Some(version)) =
            (field("Package"), field("Status"), field("Version"))
        else {
            continue;
        };
        if status.ends_with(" installed") {
            let arch = field("Architecture").unwrap_or("all").to_string();
            out.insert(name.to_string(), (version.to_string(), arch));
        }
    }
    out
}

/// Whether `version` meets `constraint` (`>= 1.2`, `= 1:14.0.6-12`, `<< 3`, or empty).
pub fn version_matches(version: &str, constraint: &str) -> bool {
    let constraint = constraint.trim();
    if constraint.is_empty() {
        return true;
    }
    let (op, wanted) = match constraint.find(|c: char| c.is_ascii_alphanumeric()) {
        Some(at) => (constraint[..at].trim(), constraint[at..].trim()),
        None => return false,
    };
    let (Ok(have), Ok(want)) = (
        version.parse::<crate::kernel::apt::version::Version>(),
        wanted.parse::<crate::kernel::apt::version::Version>(),
    ) else {
        return false;
    };
    match op {
        ">=" => have >= want,
        "<=" => have <= want,
        ">>" => have > want,
        "<<" => have < want,
        "=" => have == want,
        _ => false,
    }
}

/// A dependency `libfoo1 (>= 1.2)` as its name (without an arch qualifier) and
/// constraint.
pub fn split_dependency(dependency: &str) -> (&str, &str) {
    let (name, rest) = match dependency.split_once('(') {
        Some((name, rest)) => (name.trim(), rest.trim_end_matches(')').trim()),
        None => (dependency.trim(), ""),
    };
    (name.split(':').next().unwrap_or(name), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_follow_dpkg() {
        assert!(version_matches("2.74.6-2", ">= 2.67.3"));
        assert!(!version_matches("2.66.8-1", ">= 2.67.3"));
        assert!(version_matches("1:14.0.6-12", "= 1:14.0.6-12"));
        assert!(version_matches("1:7.2+dfsg-7", ">> 1:7.2+dfsg~"));
        assert!(version_matches("anything", ""));
        assert_eq!(
            split_dependency("libglib2.0-0 (>= 2.67.3)"),
            ("libglib2.0-0", ">= 2.67.3")
        );
        assert_eq!(split_dependency("python3:any"), ("python3", ""));
    }

    /// A package dpkg calls installed whose files are gone is not the host's.
    #[test]
    fn an_installed_package_without_its_files_does_not_count() {
        let dpkg = tempfile::tempdir().unwrap();
        std::fs::write(
            dpkg.path().join("status"),
            "Package: libpresent1\nStatus: install ok installed\nArchitecture: amd64\n\
             Version: 2.0-1\n\nPackage: libgone1\nStatus: install ok installed\n\
             Architecture: amd64\nVersion: 2.0-1\n\nPackage: libremoved1\n\
             Status: deinstall ok config-files\nVersion: 2.0-1\n",
        )
        .unwrap();
        std::fs::create_dir(dpkg.path().join("info")).unwrap();
        std::fs::write(
            dpkg.path().join("info/libpresent1:amd64.list"),
            "/.\n/usr\n/usr/bin\n",
        )
        .unwrap();
        std::fs::write(
            dpkg.path().join("info/libgone1:amd64.list"),
            "/usr\n/usr/lib/bpflab-no-such-file.so.1\n",
        )
        .unwrap();
        let host = HostPackages::read(dpkg.path());
        assert!(host.satisfies("libpresent1", ">= 1.5"));
        assert!(!host.satisfies("libpresent1", ">= 2.1"));
        assert!(!host.satisfies("libgone1", ""));
        assert!(!host.satisfies("libremoved1", ""));
        assert!(host.satisfies("libc6", ">= 2.34"), "glibc is the host's");
        let none = HostPackages::read(&dpkg.path().join("absent"));
        assert!(!none.satisfies("libpresent1", ""));
    }
}
