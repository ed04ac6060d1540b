//! Which pinned packages a need takes on this host: its roots, and (for programs) the
//! dependencies they reach that the host does not satisfy. A dependency the host has is
//! not followed further: dpkg already holds the host's to its own dependencies. A set for
//! the guest takes glibc too: the guest has no C library of its own.

use std::collections::BTreeSet;

use anyhow::bail;

use super::host::{split_dependency, HostPackages};
use super::lock::{Locked, ToolsLock};
use super::spec::PackageSet;

/// The pinned packages of `set` for a release and arch, in a stable order (by name).
/// With `host`, only what it lacks (the roots always: they are what is missing); without,
/// everything the closure reaches (what a host with nothing but glibc needs).
pub fn packages<'a>(
    lock: &'a ToolsLock,
    release: &str,
    arch: &str,
    set: &PackageSet,
    host: Option<&HostPackages>,
) -> anyhow::Result<Vec<&'a Locked>> {
    let mut chosen: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    // (name, constraint, whether it is a root)
    let mut todo: Vec<(String, String, bool)> = set
        .roots
        .iter()
        .map(|r| (r.clone(), String::new(), true))
        .collect();
    while let Some((name, constraint, is_root)) = todo.pop() {
        if chosen.contains(name.as_str()) {
            continue;
        }
        let has = host.is_some_and(|h| h.satisfies(&name, &constraint));
        if !is_root && (has || (name == "libc6" && !set.guest)) {
            continue;
        }
        let Some(locked) = lock.find(release, arch, &name) else {
            bail!(
                "{} pins no {name} for Debian {release} ({arch}), which {} needs: run \
                 `bpflab tools update`",
                super::lock::lock_path().display(),
                set.key
            );
        };
        chosen.insert(&locked.package.name);
        out.push(locked);
        if set.follows(&locked.package.name) {
            for dependency in &locked.depends {
                let (dep, constraint) = split_dependency(dependency);
                if !set.excludes(dep) && !chosen.contains(dep) {
                    todo.push((dep.to_string(), constraint.to_string(), false));
                }
            }
        }
    }
    out.sort_by(|a, b| a.package.name.cmp(&b.package.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::kernel::apt::index::Package;
    use crate::provision::spec::Need;

    fn locked(name: &str, depends: &[&str]) -> Locked {
        Locked {
            release: "bookworm".into(),
            arch: "amd64".into(),
            suite: "bookworm".into(),
            depends: depends.iter().map(|d| d.to_string()).collect(),
            package: Package {
                name: name.into(),
                version: "1".into(),
                filename: format!("pool/{name}.deb"),
                size: 1,
                sha256: "00".into(),
            },
        }
    }

    fn lock() -> ToolsLock {
        ToolsLock {
            releases: vec![],
            packages: vec![
                locked("clang", &["clang-14 (>= 14~)"]),
                locked(
                    "clang-14",
                    &[
                        "libc6 (>= 2.34)",
                        "libllvm14",
                        "libstdc++-12-dev",
                        "binutils",
                    ],
                ),
                locked("libllvm14", &["libc6 (>= 2.36)", "libz3-4 (>= 4.8.12)"]),
                locked("libz3-4", &["libc6"]),
            ],
        }
    }

    fn names(list: &[&Locked]) -> Vec<String> {
        list.iter().map(|l| l.package.name.clone()).collect()
    }

    #[test]
    fn the_closure_leaves_out_glibc_and_what_nothing_runs() {
        let set = Need::Clang.packages(Arch::X86_64);
        let lock = lock();
        let all = packages(&lock, "bookworm", "amd64", &set, None).unwrap();
        assert_eq!(names(&all), ["clang", "clang-14", "libllvm14", "libz3-4"]);
    }

    #[test]
    fn what_the_host_has_is_not_unpacked_but_the_roots_are() {
        let dpkg = tempfile::tempdir().unwrap();
        // The host "has" clang by dpkg's word, and libz3-4 with its files.
        std::fs::write(
            dpkg.path().join("status"),
            "Package: clang\nStatus: install ok installed\nVersion: 1\n\n\
             Package: libz3-4\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.8.12-3\n",
        )
        .unwrap();
        std::fs::create_dir(dpkg.path().join("info")).unwrap();
        std::fs::write(dpkg.path().join("info/clang.list"), "/usr\n").unwrap();
        std::fs::write(dpkg.path().join("info/libz3-4:amd64.list"), "/usr\n").unwrap();
        let host = HostPackages::read(dpkg.path());
        let set = Need::Clang.packages(Arch::X86_64);
        let lock = lock();
        let some = packages(&lock, "bookworm", "amd64", &set, Some(&host)).unwrap();
        assert_eq!(names(&some), ["clang", "clang-14", "libllvm14"]);
    }

    #[test]
    fn the_guests_closure_takes_glibc() {
        let mut lock = lock();
        lock.packages.extend([
            locked("bpftool", &["libc6 (>= 2.34)", "libelf1 (>= 0.144)"]),
            locked("libelf1", &["libc6 (>= 2.34)"]),
            locked("libc6", &[]),
        ]);
        let set = Need::Bpftool(Arch::Arm64).packages(Arch::X86_64);
        let all = packages(&lock, "bookworm", "amd64", &set, None).unwrap();
        assert_eq!(names(&all), ["bpftool", "libc6", "libelf1"]);
    }

    #[test]
    fn a_dependency_the_lock_lacks_says_what_to_run() {
        let mut lock = lock();
        lock.packages.retain(|p| p.package.name != "libz3-4");
        let set = Need::Clang.packages(Arch::X86_64);
        let err = packages(&lock, "bookworm", "amd64", &set, None).unwrap_err();
        assert!(err.to_string().contains("pins no libz3-4"), "{err}");
        assert!(err.to_string().contains("bpflab tools update"), "{err}");
    }
}
