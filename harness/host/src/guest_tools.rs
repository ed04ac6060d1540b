//! Programs for the guest besides the agent: busybox, for the interactive `--shell`.
//!
//! Taken from Debian's `busybox-static` for the guest's arch, so an arm64 guest gets an
//! arm64 busybox whatever the host is.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::arch::Arch;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::debian::archive;

/// The path of a static busybox for `arch`, fetched into the cache if needed.
pub fn busybox(config: &Config, catalog: &Catalog, arch: Arch) -> anyhow::Result<PathBuf> {
    let query = archive::Query {
        what: "busybox".into(),
        suites: &catalog.busybox.suites,
        pattern: regex::Regex::new(&catalog.busybox.package).context("busybox package pattern")?,
        arch,
    };
    let dir = config
        .cache_dir
        .join("tools")
        .join(arch.name())
        .join("busybox");
    archive::obtain(config, &query, &dir, false, None, |path| {
        (path == "bin/busybox").then(|| "busybox".to_string())
    })?;
    Ok(dir.join("busybox"))
}
