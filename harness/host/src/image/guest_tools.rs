//! Programs for the guest besides the agent: busybox, for the interactive `--shell`, and
//! bpftool, to inspect what a lesson loaded (with `--shell`, and for lessons that declare
//! `guest_tools = ["bpftool"]`).
//!
//! Both are Debian's, for the guest's arch, so an arm64 guest gets arm64 programs whatever
//! the host is. busybox comes from `busybox-static`; bpftool is dynamically linked, so it
//! comes with exactly the files its loader loads (read from its ELF headers, not guessed),
//! from the packages pinned in `images/tools.lock`: glibc's loader at the path bpftool
//! names, and the libraries in `/lib/<triple>/`, where that loader looks by default. No
//! wrapper, no `LD_LIBRARY_PATH`: `bpftool prog show` works as typed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::arch::Arch;
use crate::config::Config;
use crate::image::{elf, initramfs::GuestFile};
use crate::kernel::apt::{archive, Distribution};
use crate::kernel::catalog::Catalog;
use crate::provision::{self, Need};

/// The busybox package query for `arch` (also used to pin it).
pub fn busybox_query<'a>(catalog: &'a Catalog, arch: Arch) -> anyhow::Result<archive::Query<'a>> {
    Ok(archive::Query {
        what: "busybox".into(),
        distribution: Distribution::Debian,
        suites: &catalog.busybox.suites,
        pattern: regex_lite::Regex::new(&catalog.busybox.package)
            .context("busybox package pattern")?,
        arch,
    })
}

/// The path of a static busybox for `arch`, fetched into the cache if needed: the package
/// pinned in the lock file.
pub fn busybox(config: &Config, catalog: &Catalog, arch: Arch) -> anyhow::Result<PathBuf> {
    let query = busybox_query(catalog, arch)?;
    let dir = config
        .cache_dir
        .join("tools")
        .join(arch.name())
        .join("busybox");
    let lock = crate::kernel::pins::KernelLock::load(&crate::kernel::pins::lock_path())?;
    let pinned = lock.find_tool("busybox", arch).with_context(|| {
        format!(
            "busybox for {arch} is not pinned in {}: run `bpflab kernels update`",
            crate::kernel::pins::lock_path().display()
        )
    })?;
    archive::obtain(config, &query, &dir, false, Some(pinned), |path| {
        (path == "bin/busybox").then(|| "busybox".to_string())
    })?;
    Ok(dir.join("busybox"))
}

/// Where bpftool goes in the guest (Debian's path, on the shell's PATH).
pub const BPFTOOL: &str = "usr/sbin/bpftool";

/// bpftool for `arch` guests and every file it loads, unpacked into the cache if needed.
pub fn bpftool(config: &Config, arch: Arch) -> anyhow::Result<Vec<GuestFile>> {
    let unpacked = provision::guest(config, Need::Bpftool(arch))?;
    program_files(&unpacked.root, BPFTOOL, arch)
}

/// The program `program` of an unpacked `root` (a path below it), its dynamic loader and
/// the libraries it loads, each where the guest's loader finds it.
pub fn program_files(root: &Path, program: &str, arch: Arch) -> anyhow::Result<Vec<GuestFile>> {
    let binary = inside(root, program)?;
    let found = elf::dynamic(&read(&binary)?).with_context(|| format!("reading {program}"))?;
    let mut files = vec![GuestFile {
        guest: program.to_string(),
        host: binary,
        mode: 0o755,
    }];
    let Some(interpreter) = found.interpreter else {
        return Ok(files); // statically linked: nothing else to bring
    };
    let loader = interpreter.trim_start_matches('/').to_string();
    files.push(GuestFile {
        host: inside(root, &loader)?,
        guest: loader.clone(),
        mode: 0o755,
    });
    let loader_name = loader.rsplit('/').next().unwrap_or_default().to_string();
    let triple = arch.gnu_triple();
    let dirs = [
        format!("lib/{triple}"),
        format!("usr/lib/{triple}"),
        "lib".to_string(),
        "usr/lib".to_string(),
    ];
    let mut seen = BTreeSet::from([loader_name]);
    let mut todo = found.needed;
    while let Some(library) = todo.pop() {
        if !seen.insert(library.clone()) {
            continue;
        }
        anyhow::ensure!(
            !library.contains('/') && library != ".." && !library.is_empty(),
            "{program} names a library by a path ({library}), not by a name"
        );
        let host = dirs
            .iter()
            .find_map(|dir| inside(root, &format!("{dir}/{library}")).ok())
            .with_context(|| {
                format!(
                    "{program} loads {library}, which none of its packages in {} holds",
                    root.display()
                )
            })?;
        todo.extend(elf::dynamic(&read(&host)?)?.needed);
        files.push(GuestFile {
            guest: format!("lib/{triple}/{library}"),
            host,
            mode: 0o755,
        });
    }
    Ok(files)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The file `relative` names below `root`, its links followed but never out of `root`.
fn inside(root: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    let top = root
        .canonicalize()
        .with_context(|| format!("resolving {}", root.display()))?;
    let path = root
        .join(relative)
        .canonicalize()
        .with_context(|| format!("{} holds no {relative}", root.display()))?;
    anyhow::ensure!(
        path.starts_with(&top) && path.is_file(),
        "{relative} in {} is not a file inside it",
        root.display()
    );
    Ok(path)
}
