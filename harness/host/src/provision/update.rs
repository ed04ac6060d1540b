//! `bpflab tools update`: pins, for each Debian release and host arch, the newest
//! packages of every need and their whole dependency closure (what a host with nothing
//! but glibc would unpack), from each suite's signed index, in `images/tools.lock`; and,
//! for the guest's arch, the guest's programs with glibc (see [`spec::GUEST_RELEASE`]).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;

use super::host::split_dependency;
use super::lock::{lock_path, Locked, Release, ToolsLock};
use super::spec::{self, PackageSet};
use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::{archive, index, mirror::Mirrors, Distribution};
use crate::{fetch, term};

/// The releases bpflab takes tools from, oldest first: by their C library, they cover
/// hosts with glibc 2.31 and newer.
pub const RELEASES: &[&str] = &["bullseye", "bookworm", "trixie"];

/// One package of a release's index, with the fields the closure reads.
#[derive(Debug, Clone)]
struct Entry {
    package: index::Package,
    suite: String,
    depends: Vec<String>,
}

/// A release's packages for one arch: by name, and virtual name → its providers.
#[derive(Debug, Default)]
struct Archive {
    packages: HashMap<String, Entry>,
    provides: HashMap<String, Vec<String>>,
}

/// Pins every release for every arch (or the ones named) and writes the lock.
pub fn update(config: &Config, releases: &[String], arches: &[Arch]) -> anyhow::Result<()> {
    let path = lock_path();
    let mut lock = ToolsLock::load(&path)?;
    let mirrors = Mirrors::discover(config, Distribution::Debian)?;
    let http = fetch::agent();
    for release in releases {
        for &arch in arches {
            let archive = read_archive(config, &http, &mirrors, release, arch)?;
            let glibc = archive
                .packages
                .get("libc6")
                .map(|e| upstream(&e.package.version))
                .with_context(|| format!("Debian {release} ({arch}) has no libc6"))?;
            let mut pins: BTreeMap<String, Locked> = BTreeMap::new();
            // The guest's programs are pinned under their own arch, of one release.
            let guest = spec::GUEST
                .into_iter()
                .filter(|n| n.package_arch(arch) == arch && release == spec::GUEST_RELEASE);
            for need in spec::ALL.into_iter().chain(guest) {
                let set = need.packages(arch);
                pin_closure(&archive, &set, release, arch, &mut pins).with_context(|| {
                    format!("pinning {} for Debian {release} ({arch})", set.key)
                })?;
            }
            let size: u64 = pins.values().map(|p| p.package.size).sum();
            term::status(format!(
                "Debian {release} ({arch}, glibc {glibc}): {} packages pinned, {} in all",
                pins.len(),
                super::megabytes(size)
            ));
            let release = Release {
                release: release.clone(),
                arch: arch.debian_arch().into(),
                glibc,
            };
            lock.set_release(release, pins.into_values().collect());
        }
    }
    lock.save(&path)?;
    term::status(format!("wrote {}", path.display()));
    Ok(())
}

/// `2.36` of `2.36-9+deb12u13` (and of an epoch's `1:2.36-9`).
fn upstream(version: &str) -> String {
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    version.split('-').next().unwrap_or(version).to_string()
}

/// The packages of a release and its security suite for `arch`, the newest of each name.
fn read_archive(
    config: &Config,
    http: &ureq::Agent,
    mirrors: &Mirrors,
    release: &str,
    arch: Arch,
) -> anyhow::Result<Archive> {
    let mut archive = Archive::default();
    for suite in [release.to_string(), format!("{release}-security")] {
        let base = mirrors.for_suite(&suite).with_context(|| {
            format!("no mirror for {suite} (set BPFLAB_DEBIAN_SECURITY_MIRROR)")
        })?;
        let spinner = term::spinner(format!("reading the package index of {suite} ({arch})"));
        let text = archive::suite_index(http, base, &suite, arch, Distribution::Debian, config)?;
        let fields = ["Depends", "Pre-Depends", "Provides"];
        for (package, extra) in index::parse_packages_with(&text, |_| true, &fields) {
            let depends: Vec<String> = extra[..2]
                .iter()
                .flatten()
                .flat_map(|list| list.split(','))
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect();
            for provided in extra[2].iter().flat_map(|list| list.split(',')) {
                let (name, _) = split_dependency(provided);
                let providers = archive.provides.entry(name.to_string()).or_default();
                providers.push(package.name.clone());
            }
            let newer = archive.packages.get(&package.name).is_none_or(|known| {
                index::newest([known.package.clone(), package.clone()]).as_ref() == Some(&package)
            });
            if newer {
                let entry = Entry {
                    package: package.clone(),
                    suite: suite.clone(),
                    depends,
                };
                archive.packages.insert(package.name.clone(), entry);
            }
        }
        spinner.finish_and_clear();
    }
    Ok(archive)
}

/// Adds the packages `set` reaches in `archive` to `pins`.
fn pin_closure(
    archive: &Archive,
    set: &PackageSet,
    release: &str,
    arch: Arch,
    pins: &mut BTreeMap<String, Locked>,
) -> anyhow::Result<()> {
    let mut todo: Vec<String> = set.roots.clone();
    while let Some(name) = todo.pop() {
        if pins.contains_key(&name) {
            continue;
        }
        let entry = archive
            .packages
            .get(&name)
            .with_context(|| format!("the index has no package {name}"))?;
        let mut depends = Vec::new();
        if set.follows(&name) {
            for group in &entry.depends {
                let Some(chosen) = choose_alternative(archive, group) else {
                    anyhow::bail!("{name} depends on {group}, which the index does not have");
                };
                let (dep, _) = split_dependency(&chosen);
                if (dep == "libc6" && !set.guest) || set.excludes(dep) {
                    continue;
                }
                todo.push(dep.to_string());
                depends.push(chosen);
            }
        }
        let locked = Locked {
            release: release.to_string(),
            arch: arch.debian_arch().to_string(),
            suite: entry.suite.clone(),
            depends,
            package: entry.package.clone(),
        };
        pins.insert(name, locked);
    }
    Ok(())
}

/// The first alternative of `a (>= 1) | b` the archive has, as a real package: a
/// virtual one is its first provider's name, without a version constraint.
fn choose_alternative(archive: &Archive, group: &str) -> Option<String> {
    group.split('|').map(str::trim).find_map(|alternative| {
        let (name, _) = split_dependency(alternative);
        if archive.packages.contains_key(name) {
            Some(alternative.replace(":any", ""))
        } else {
            archive.provides.get(name)?.first().cloned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_and_virtual_packages_resolve_to_real_ones() {
        let entry = |name: &str| Entry {
            package: index::Package {
                name: name.into(),
                version: "1".into(),
                filename: String::new(),
                size: 0,
                sha256: String::new(),
            },
            suite: "bookworm".into(),
            depends: vec![],
        };
        let mut archive = Archive::default();
        for name in ["debconf", "libgcc-s1"] {
            archive.packages.insert(name.into(), entry(name));
        }
        archive
            .provides
            .insert("debconf-2.0".into(), vec!["debconf".into()]);
        assert_eq!(
            choose_alternative(&archive, "cdebconf | debconf-2.0").as_deref(),
            Some("debconf")
        );
        assert_eq!(
            choose_alternative(&archive, "libgcc-s1 (>= 3.0) | libgcc1").as_deref(),
            Some("libgcc-s1 (>= 3.0)")
        );
        assert_eq!(choose_alternative(&archive, "nothing-here"), None);
        assert_eq!(upstream("2.36-9+deb12u13"), "2.36");
        assert_eq!(upstream("1:2.41-12"), "2.41");
    }
}
