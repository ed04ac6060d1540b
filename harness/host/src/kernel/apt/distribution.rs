//! The apt archives bpflab takes packages from: Debian's and Ubuntu's. Both publish the
//! same formats (a signed `InRelease` per suite, `Packages.xz` indexes, `.deb` files), so
//! one client reads both; what differs between them is here: where the user names the
//! mirror, which keys sign the archive, which suites are its own and whether security
//! updates come from an archive of their own.

use crate::openpgp::PinnedKey;

/// An apt archive bpflab can read.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Debian: its main archive and its security archive.
    Debian,
    /// Ubuntu: its main archive, which serves every pocket (`-updates`, `-security`) of
    /// every release for amd64 (arm64 is in a "ports" archive of its own, which bpflab
    /// does not read).
    Ubuntu,
}

/// Debian's release names and aliases; other repositories on a host (vendors' apt
/// repositories) are recognised by not using them.
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

/// Ubuntu's release names, from the oldest bpflab reads to the newest.
const UBUNTU_SUITES: &[&str] = &[
    "trusty", "xenial", "bionic", "focal", "jammy", "noble", "oracular", "plucky", "questing",
    "resolute", "devel",
];

impl Distribution {
    /// Every distribution, in the order `bpflab kernels` lists them.
    pub const ALL: [Distribution; 2] = [Distribution::Debian, Distribution::Ubuntu];

    /// Its name, for people: `Debian`.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Debian => "Debian",
            Distribution::Ubuntu => "Ubuntu",
        }
    }

    /// Its name in the catalog, the config file and the lock: `debian`.
    pub fn key(self) -> &'static str {
        match self {
            Distribution::Debian => "debian",
            Distribution::Ubuntu => "ubuntu",
        }
    }

    /// The environment variable naming its main mirror.
    pub fn mirror_env(self) -> &'static str {
        match self {
            Distribution::Debian => "BPFLAB_DEBIAN_MIRROR",
            Distribution::Ubuntu => "BPFLAB_UBUNTU_MIRROR",
        }
    }

    /// The environment variable naming its security mirror, where security updates come
    /// from an archive of their own. Ubuntu's main archive carries `-security` itself.
    pub fn security_mirror_env(self) -> Option<&'static str> {
        match self {
            Distribution::Debian => Some("BPFLAB_DEBIAN_SECURITY_MIRROR"),
            Distribution::Ubuntu => None,
        }
    }

    /// The environment variable naming an extra keyring to trust for this archive.
    pub fn keyring_env(self) -> &'static str {
        match self {
            Distribution::Debian => "BPFLAB_DEBIAN_KEYRING",
            Distribution::Ubuntu => "BPFLAB_UBUNTU_KEYRING",
        }
    }

    /// The archive keys bpflab ships and pins for it.
    pub fn keys(self) -> &'static [PinnedKey] {
        match self {
            Distribution::Debian => super::keys::DEBIAN_KEYS,
            Distribution::Ubuntu => super::keys::UBUNTU_KEYS,
        }
    }

    /// What a mirror's URL looks like, for messages: bpflab names no real host.
    pub fn example_mirror(self) -> String {
        format!("http://<mirror>/{}", self.key())
    }

    /// Whether `suite` (`bookworm-security`, `noble-updates`, `sid`) is one of this
    /// distribution's.
    pub fn owns_suite(self, suite: &str) -> bool {
        let base = suite.split(['-', '/']).next().unwrap_or(suite);
        let own = match self {
            Distribution::Debian => DEBIAN_SUITES,
            Distribution::Ubuntu => UBUNTU_SUITES,
        };
        own.contains(&base)
    }

    /// Whether an apt source at `uri` is a "ports" archive (what an arm64 Ubuntu host's
    /// apt names, `…/ubuntu-ports`, and Debian's unofficial `…/debian-ports`): those carry
    /// other architectures only, and no amd64 kernel.
    pub fn is_ports_archive(uri: &str) -> bool {
        uri.trim_end_matches('/').ends_with("-ports")
    }

    /// The distribution a suite belongs to, if any.
    pub fn of_suite(suite: &str) -> Option<Distribution> {
        Distribution::ALL.into_iter().find(|d| d.owns_suite(suite))
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_belong_to_their_distribution() {
        for (suite, owner) in [
            ("bookworm-security", Some(Distribution::Debian)),
            ("sid", Some(Distribution::Debian)),
            ("stable/updates", Some(Distribution::Debian)),
            ("xenial-updates", Some(Distribution::Ubuntu)),
            ("noble", Some(Distribution::Ubuntu)),
            ("jammy-security", Some(Distribution::Ubuntu)),
            ("nodistro", None),
            ("cloud-sdk-bookworm", None),
        ] {
            assert_eq!(Distribution::of_suite(suite), owner, "{suite}");
        }
    }

    #[test]
    fn only_debian_has_a_security_archive_of_its_own() {
        assert!(Distribution::Debian.security_mirror_env().is_some());
        assert_eq!(Distribution::Ubuntu.security_mirror_env(), None);
        assert_eq!(
            Distribution::Ubuntu.example_mirror(),
            "http://<mirror>/ubuntu"
        );
    }

    #[test]
    fn ports_archives_are_recognised() {
        assert!(Distribution::is_ports_archive(
            "http://mirror.example/ubuntu-ports/"
        ));
        assert!(!Distribution::is_ports_archive(
            "http://mirror.example/ubuntu/"
        ));
    }
}
