//! Minimal kernels built from source: tinyconfig, plus bpflab's config fragments
//! (`kernel-config/`), checked, compiled, cached.
//!
//! The cache key is everything that decides the result: the source's hash, the merged
//! fragments, the arch and the compiler's version. A built kernel is booted with
//! `--kernel <series>-minimal`.

mod fragments;
mod make;
mod source;
mod target;
mod unpack;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::archive;
use crate::kernel::catalog::{Catalog, KernelSeries};
use crate::kernel::{KernelImage, KernelVersion};
use crate::sandbox::Sandbox;
use crate::term;

pub use fragments::{fragments, missing_options, parse_fragments, Fragments};
use make::build_with_progress;
use source::source_tarball;
use target::{Target, Toolchain};

/// BTF that pahole encoded from the build's DWARF, beside a kernel too old to carry its
/// own (`CONFIG_DEBUG_INFO_BTF` is 5.2+). The guest resolves CO-RE relocations against it.
const BTF_FILE: &str = "vmlinux.btf";

/// What a kernel built from source is for; each flavour adds fragments to the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavour {
    /// Only what the lessons need: the smallest, fastest-booting kernel.
    Minimal,
    /// Minimal plus 9p, virtio-pci, virtio-serial and the POSIX facilities host programs
    /// expect, so vmtest and virtme-ng can boot the same image (`bpflab bench --peers`).
    Peers,
}

impl Flavour {
    /// Every flavour, in the order `bpflab kernels` lists them.
    pub const ALL: [Flavour; 2] = [Flavour::Minimal, Flavour::Peers];

    /// The flavour's name, as in `--kernel 6.1-<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Minimal => "minimal",
            Flavour::Peers => "peers",
        }
    }

    /// The fragment this flavour adds, under `kernel-config/`.
    fn fragment(self) -> Option<&'static str> {
        match self {
            Flavour::Minimal => None,
            Flavour::Peers => Some("flavours/peers.config"),
        }
    }

    /// Splits `6.1-minimal` into its series and flavour; `None` for a plain series.
    pub fn split(spec: &str) -> Option<(&str, Flavour)> {
        Flavour::ALL.into_iter().find_map(|f| {
            spec.strip_suffix(f.name())
                .and_then(|rest| rest.strip_suffix('-'))
                .map(|series| (series, f))
        })
    }

    /// How a build of `series` in this flavour is named on the command line.
    pub fn kernel_name(self, series: &str) -> String {
        format!("{series}-{}", self.name())
    }
}

/// Where the build of `series` in `flavour` for `arch` is kept once built.
pub fn built_dir(config: &Config, series: &str, flavour: Flavour, arch: Arch) -> PathBuf {
    crate::kernel::cache_dir(config, &flavour.kernel_name(series), arch)
}

/// Returns the kernel of `series` in `flavour` for `arch`, building it if it is not cached.
pub fn obtain(
    config: &Config,
    catalog: &Catalog,
    series_name: &str,
    flavour: Flavour,
    arch: Arch,
    jobs: usize,
) -> anyhow::Result<KernelImage> {
    let series = catalog.find(series_name).with_context(|| {
        format!(
            "unknown kernel series `{series_name}`; known: {}",
            catalog.series_names().join(", ")
        )
    })?;
    source::ensure_buildable(series)?;
    let toolchain = Toolchain::find(arch)?;
    let fragments = fragments(series, flavour, arch)?;
    let target = Target {
        series,
        flavour,
        arch,
        out_dir: built_dir(config, &series.series, flavour, arch),
        toolchain,
        fragments,
    };
    // Fast path for every run after the build: the source's hash as its cache entry
    // recorded it (a source package), or as it is pinned (a kernel.org tarball, which is
    // only ever used when it has that hash), instead of reading the 140 MB tarball again.
    let recorded_sha = match archive::record(&config.cache_dir.join("sources").join(&series.series))
        .and_then(|r| source::recorded_tarball(&r).map(|(_, sha)| sha.to_string()))
    {
        Some(sha) => Some(sha),
        None => source::kernel_org_pin(series)?.map(|(_, sha)| sha),
    };
    if recorded_sha
        .as_deref()
        .is_some_and(|sha| target.is_built(&target.key(sha)))
    {
        return Ok(target.image());
    }

    let (tarball, source_sha) = source_tarball(config, series, arch)?;
    let key = target.key(&source_sha);
    let name = flavour.kernel_name(&series.series);
    let parent = target
        .out_dir
        .parent()
        .context("a kernel directory has a parent")?;
    // A second bpflab asking for the same kernel waits for this build and then uses it.
    let _lock = crate::file_lock::acquire(parent, &name, &format!("building {name} for {arch}"))?;
    if target.is_built(&key) {
        return Ok(target.image());
    }
    term::status(format!(
        "kernel {name} for {arch} is not in the cache: building it from source (tinyconfig + \
         kernel-config/), once; later runs use the cache"
    ));
    let sandbox = Sandbox::for_builds();
    let work = target.unpack(&tarball, &sandbox, parent)?;
    let src = work.path().join("src");
    let dot_config = target.configure(&src, &work.path().join("bpflab.config"), &sandbox)?;
    let log_path = config
        .cache_dir
        .join("kernels")
        .join(format!("build-{name}-{arch}.log"));
    let jobs_arg = format!("-j{}", jobs.max(1));
    build_with_progress(
        target.make(&src, &sandbox, &[jobs_arg.as_str(), target.image_target()]),
        &log_path,
        &format!("building {name} for {arch}"),
    )?;
    target.encode_btf(&src, &sandbox, &dot_config)?;
    target.publish(&src, parent, &dot_config, &key)?;
    term::status(format!(
        "built {name} for {arch}: {} ({} KiB); build log {}",
        target.out_dir.join("vmlinuz").display(),
        std::fs::metadata(target.out_dir.join("vmlinuz"))?.len() / 1024,
        log_path.display()
    ));
    Ok(target.image())
}

fn built_image(
    series: &KernelSeries,
    flavour: Flavour,
    arch: Arch,
    dir: &Path,
    compiler: &str,
) -> KernelImage {
    // The uncompressed vmlinux where there is one (x86-64, PVH), else the arch's image.
    let vmlinux = Some(dir.join("vmlinux")).filter(|p| p.is_file());
    let compressed = vmlinux.is_some().then(|| dir.join("vmlinuz"));
    let image = vmlinux.unwrap_or_else(|| dir.join("vmlinuz"));
    KernelImage {
        compressed,
        series: flavour.kernel_name(&series.series),
        arch,
        version: KernelVersion::parse(&series.series),
        image,
        config: Some(dir.join("config")),
        btf: Some(dir.join(BTF_FILE)).filter(|p| p.is_file()),
        package: None,
        origin: format!(
            "{} {} built from source with {compiler}",
            flavour.name(),
            series.series
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::kernel::catalog::Catalog;

    #[test]
    fn built_kernels_are_named_series_dash_flavour() {
        assert_eq!(
            Flavour::split("6.1-minimal"),
            Some(("6.1", Flavour::Minimal))
        );
        assert_eq!(
            Flavour::split("7.3-rc-peers"),
            Some(("7.3-rc", Flavour::Peers))
        );
        assert_eq!(Flavour::split("7.3-rc"), None);
        assert_eq!(Flavour::split("6.1minimal"), None);
        assert_eq!(Flavour::Peers.kernel_name("6.12"), "6.12-peers");
    }

    #[test]
    fn the_peers_flavour_adds_what_vmtest_and_virtme_ng_need() {
        let catalog = Catalog::load(&config::source_root().join("images/catalog.toml")).unwrap();
        let f = fragments(catalog.find("6.1").unwrap(), Flavour::Peers, Arch::X86_64).unwrap();
        for needed in ["CONFIG_9P_FS", "CONFIG_VIRTIO_PCI", "CONFIG_KPROBES"] {
            assert!(
                f.required.iter().any(|r| r == needed),
                "{needed} not required"
            );
        }
    }
}
