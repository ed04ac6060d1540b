//! `bpflab kernels`: the catalog, its pins, and kernels built from source.

use std::process::ExitCode;

use crate::arch::Arch;
use crate::config::{self, Config};
use crate::kernel::apt::Distribution;
use crate::kernel::catalog::Catalog;
use crate::kernel::{self};
use crate::term;

/// Lists the catalog: series, arches, where each comes from, what is cached.
pub fn list() -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load_shipped()?;
    println!(
        "{:<8} {:<8} {:<30} cached",
        "series", "arch", "sources (in order)"
    );
    // Reason → the (series, arch) it keeps from this machine.
    let mut unavailable: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for k in &catalog.kernels {
        for arch in Arch::ALL {
            if let Some(why) = kernel::availability::unavailable_here(k, arch, &config) {
                unavailable
                    .entry(why)
                    .or_default()
                    .push(format!("{} {arch}", k.series));
            }
            let mut sources = Vec::new();
            if k.package_pattern(arch).is_some() {
                sources.push(match k.distribution() {
                    Distribution::Debian => "debian-package",
                    Distribution::Ubuntu => "ubuntu-package",
                });
            }
            if let Some(src) = &k.source {
                if src.package.is_some() {
                    sources.push(match k.distribution() {
                        Distribution::Debian => "debian-source",
                        Distribution::Ubuntu => "ubuntu-source",
                    });
                }
                if src.kernel_org.is_some() {
                    sources.push("kernel.org");
                }
            }
            let mut cached = Vec::new();
            if let Some(pkg) = kernel::cached(&config, &k.series, arch) {
                cached.push(pkg);
            }
            for flavour in crate::kernel::build::Flavour::ALL {
                let built = crate::kernel::build::built_dir(&config, &k.series, flavour, arch);
                if built.join("vmlinuz").is_file() {
                    cached.push(format!("{} (built)", flavour.kernel_name(&k.series)));
                }
            }
            let default = if k.series == catalog.default {
                " (default)"
            } else {
                ""
            };
            let cached = if cached.is_empty() {
                "-".to_string()
            } else {
                cached.join(", ")
            };
            println!(
                "{:<8} {:<8} {:<30} {cached}{default}",
                k.series,
                arch.name(),
                sources.join(",")
            );
        }
    }
    if !unavailable.is_empty() {
        println!("\nunavailable on this machine:");
        for (why, cells) in unavailable {
            println!("  {}: {why}", cells.join(", "));
        }
    }
    println!("\ncache: {}", config.cache_dir.display());
    if let Some((dir, count, bytes)) = crate::kernel::own::cached(&config) {
        println!(
            "kernels given by path: {count} vmlinux unpacked for PVH boot, {} MB, in {} (safe to \
             delete: each is unpacked again when its image is next booted; that of an image \
             since deleted goes by itself an hour after its last use)",
            bytes >> 20,
            dir.display()
        );
    }
    println!("boot a series with --kernel <series>; a build from source with --kernel <series>-minimal (or -peers)");
    Ok(ExitCode::SUCCESS)
}

/// Pins the newest packages and sources in `images/kernels.lock`.
pub fn update(series: &[String], arch: Vec<Arch>) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load_shipped()?;
    if let Some(unknown) = series.iter().find(|s| catalog.find(s).is_none()) {
        anyhow::bail!(
            "unknown kernel series `{unknown}`; known: {}",
            catalog.series_names().join(", ")
        );
    }
    let arches = if arch.is_empty() {
        Arch::ALL.to_vec()
    } else {
        arch
    };
    let changes = kernel::update::update_lock(&catalog, &config, series, &arches)?;
    if changes.is_empty() {
        term::status("images/kernels.lock already pins the newest packages");
    }
    for change in changes {
        println!("{change}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds a minimal kernel from source and says how to boot it.
pub fn build(
    series: &str,
    flavour: crate::kernel::build::Flavour,
    arch: Arch,
    jobs: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load_shipped()?;
    let jobs = jobs.unwrap_or_else(config::cpus);
    let image = crate::kernel::build::obtain(&config, &catalog, series, flavour, arch, jobs)?;
    println!("{}", image.image.display());
    term::status(format!(
        "boot it with: cargo run -- lesson 1 --kernel {}",
        image.series
    ));
    Ok(ExitCode::SUCCESS)
}
