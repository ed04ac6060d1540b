//! Programs for the guest besides the agent: busybox, for the interactive `--shell`.
//!
//! Taken from Debian's `busybox-static` for the guest's arch, so an arm64 guest gets an
//! arm64 busybox whatever the host is.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::{archive, Distribution};
use crate::kernel::catalog::Catalog;

/// The busybox package query for `arch` (also used to pin it).
pub fn busybox_query<'a>(catalog: &'a Catalog, arch: Arch) -> anyhow::Result<archive::Query<'a>> {
    Ok(archive::Query {
        what: "busybox".into(),
        distribution: Distribution::Debian,
        suites: &catalog.busybox.suites,
        pattern: regex::Regex::new(&catalog.busybox.package).context("busybox package pattern")?,
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
