//! Whether a kernel can be had on this machine at all. A series whose archive has no
//! mirror configured here, whose archive has no kernel for the arch, or whose source no
//! server here answers for is *unavailable*: reported with the reason and what would make
//! it available, never as a failure of bpflab or of a lesson. Anything else that stops a
//! kernel (a refused signature, a pinned file the mirror no longer has) is a failure.

use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::mirror::{Mirrors, NotConfigured};
use crate::kernel::catalog::KernelSeries;

/// A kernel that cannot be obtained on this machine, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Whether `error` says the kernel is unavailable here (rather than that something failed).
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<Unavailable>() || cause.is::<NotConfigured>())
}

/// Why `series` cannot be had for `arch` on this machine, as far as can be told without
/// the network: no package for the arch and nothing to build, or no mirror of its archive
/// configured. `None` when it may well be had (a download or a build will tell).
pub fn unavailable_here(series: &KernelSeries, arch: Arch, config: &Config) -> Option<String> {
    if series.package_pattern(arch).is_none() {
        match &series.source {
            None => return Some(no_package_reason(series, arch)),
            // A kernel.org tarball may answer: a build will tell.
            Some(source) if source.kernel_org.is_some() => return None,
            // Only the archive's source package: its mirror must be configured.
            Some(_) => {}
        }
    }
    match Mirrors::discover(config, series.distribution()) {
        Ok(_) => None,
        Err(e) => Some(format!("{e:#}")),
    }
}

/// The reason a series has no kernel for `arch`, when the catalog names none for it and
/// no source to build one from.
pub fn no_package(series: &KernelSeries, arch: Arch) -> Unavailable {
    Unavailable(format!(
        "kernel {} is not available for {arch}: {}",
        series.series,
        no_package_reason(series, arch)
    ))
}

fn no_package_reason(series: &KernelSeries, arch: Arch) -> String {
    match series.package_pattern(Arch::X86_64) {
        Some(_) if arch != Arch::X86_64 => format!(
            "{}'s archive is read for x86_64 kernels only, and the catalog names no source to \
             build one for {arch} from",
            series.distribution()
        ),
        _ => "the catalog names no package and no source for it".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::catalog::Catalog;

    #[test]
    fn a_series_with_no_package_and_no_source_for_an_arch_is_unavailable_with_the_reason() {
        let mut catalog = Catalog::load_shipped().unwrap();
        let k415 = catalog
            .kernels
            .iter_mut()
            .find(|k| k.series == "4.15")
            .unwrap();
        k415.source = None;
        let k415 = catalog.find("4.15").unwrap();
        let why = unavailable_here(k415, Arch::Arm64, &Config::default()).unwrap();
        assert_eq!(
            why,
            "Ubuntu's archive is read for x86_64 kernels only, and the catalog names no \
             source to build one for arm64 from"
        );
        assert_eq!(
            no_package(k415, Arch::Arm64).to_string(),
            format!("kernel 4.15 is not available for arm64: {why}")
        );
        assert!(is_unavailable(&anyhow::Error::new(no_package(
            k415,
            Arch::Arm64
        ))));
    }

    #[test]
    fn an_ubuntu_series_on_arm64_is_built_from_ubuntus_source_where_its_mirror_is() {
        let catalog = Catalog::load_shipped().unwrap();
        let config = Config::default();
        // 4.15's only source is Ubuntu's linux-source package: available exactly where an
        // Ubuntu mirror is configured.
        let mirror = Mirrors::discover(&config, crate::kernel::apt::Distribution::Ubuntu);
        let k415 = catalog.find("4.15").unwrap();
        assert_eq!(
            unavailable_here(k415, Arch::Arm64, &config),
            mirror.err().map(|e| format!("{e:#}"))
        );
        // 4.4 has a kernel.org tarball too: a build will tell.
        let k44 = catalog.find("4.4").unwrap();
        assert_eq!(unavailable_here(k44, Arch::Arm64, &config), None);
    }

    #[test]
    fn only_unavailability_is_unavailable() {
        let wrapped = anyhow::Error::new(Unavailable("no".into())).context("kernel 4.4");
        assert!(is_unavailable(&wrapped));
        assert!(!is_unavailable(&anyhow::anyhow!("InRelease is refused")));
    }
}
