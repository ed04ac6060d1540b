//! Debian package versions (`[epoch:]upstream[-revision]`), ordered as dpkg orders them:
//! `~` before anything, even the end; letters before other characters; digit runs as
//! numbers. The comparison is deb-version's (tested by its authors against apt's own);
//! what it is given is checked here first, as it expects only the characters Debian
//! policy allows in a version.

use std::cmp::Ordering;

/// A version string that Debian policy allows, compared as dpkg compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(String);

impl std::str::FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Version> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".+-~:".contains(c);
        anyhow::ensure!(!text.is_empty(), "an empty Debian version");
        anyhow::ensure!(
            text.chars().all(allowed),
            "{text:?} is no Debian version: only letters, digits and . + - ~ : may appear"
        );
        Ok(Version(text.to_string()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        deb_version::compare_versions(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn versions_order_as_dpkg_orders_them() {
        // Each is older than the next (dpkg --compare-versions agrees).
        let ascending = [
            "1.0~rc1",
            "1.0",
            "1.0-1~bpo12+1",
            "1.0-1",
            "1.0-1+deb12u1",
            "1.0a",
            "1.0.1",
            "1.2",
            "1.10",
            "6.1.158-1",
            "6.1.159-1",
            "6.12.57-1~bpo12+1",
            "1:0.1",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]), "{} > {}", pair[1], pair[0]);
        }
        assert_eq!(v("1.0-0").cmp(&v("1.0")), Ordering::Equal);
        assert_eq!(v("01.2").cmp(&v("1.2")), Ordering::Equal);
    }

    #[test]
    fn what_is_no_version_is_refused_not_compared() {
        for bad in ["", "é1", "1.0 beta", "1.0\u{301}", "1/0"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }
}
