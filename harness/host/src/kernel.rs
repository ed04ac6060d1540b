//! Getting a kernel image to boot: a path the user gives, or a catalog series resolved to
//! a Debian package, downloaded, verified, unpacked and cached.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::catalog::{Catalog, KernelSeries};
use crate::config::Config;
use crate::debian::{deb, index, mirror::Mirrors};
use crate::fetch;
use crate::ui;

/// What the user asked for with `--kernel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A catalog series, e.g. `6.1`.
    Series(String),
    /// A kernel image file on disk (bzImage, vmlinux, arm64 Image).
    Path(PathBuf),
}

impl KernelSpec {
    /// Anything with a `/` or naming an existing file is a path; the rest is a series.
    pub fn parse(s: &str) -> KernelSpec {
        if s.contains('/') || Path::new(s).is_file() {
            KernelSpec::Path(PathBuf::from(s))
        } else {
            KernelSpec::Series(s.to_string())
        }
    }
}

/// A kernel ready to boot.
#[derive(Debug, Clone, Serialize)]
pub struct KernelImage {
    /// Series name, or `custom` for a path.
    pub series: String,
    /// Guest architecture.
    pub arch: Arch,
    /// The image QEMU boots.
    pub image: PathBuf,
    /// The kernel's build config, when known (for feature checks).
    pub config: Option<PathBuf>,
    /// Where it came from, for the user: package and version, or the path.
    pub origin: String,
}

/// What the cache records about an unpacked Debian kernel. Written last: an entry without
/// it is incomplete and ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheRecord {
    package: index::Package,
    suite: String,
    image_sha256: String,
    has_config: bool,
}

/// Finds (and if needed fetches) the kernel for `spec` and `arch`.
pub fn obtain(
    spec: &KernelSpec,
    arch: Arch,
    catalog: &Catalog,
    config: &Config,
    refresh: bool,
) -> anyhow::Result<KernelImage> {
    match spec {
        KernelSpec::Path(path) => {
            if !path.is_file() {
                bail!("kernel image {} does not exist", path.display());
            }
            Ok(KernelImage {
                series: "custom".into(),
                arch,
                image: path.clone(),
                config: None,
                origin: path.display().to_string(),
            })
        }
        KernelSpec::Series(name) => {
            let series = catalog.find(name).with_context(|| {
                format!(
                    "unknown kernel series `{name}`; known: {} (see `bpflab kernels`), or give a path \
                     to a kernel image",
                    catalog.series_names().join(", ")
                )
            })?;
            obtain_series(series, arch, config, refresh)
        }
    }
}

/// The cache directory of one series and arch.
pub fn cache_dir(config: &Config, series: &str, arch: Arch) -> PathBuf {
    config
        .cache_dir
        .join("kernels")
        .join(arch.name())
        .join(series)
}

/// Describes what the cache holds for a series, if anything (for `bpflab kernels`).
pub fn cached(config: &Config, series: &str, arch: Arch) -> Option<String> {
    let record = read_record(&cache_dir(config, series, arch))?;
    Some(format!(
        "{} {}",
        record.package.name, record.package.version
    ))
}

fn read_record(dir: &Path) -> Option<CacheRecord> {
    let text = std::fs::read_to_string(dir.join("record.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn obtain_series(
    series: &KernelSeries,
    arch: Arch,
    config: &Config,
    refresh: bool,
) -> anyhow::Result<KernelImage> {
    let dir = cache_dir(config, &series.series, arch);
    let pattern = series.debian_pattern(arch).with_context(|| {
        format!(
            "kernel {} is not available for {arch}: the catalog has no package for it",
            series.series
        )
    })?;
    let parent = dir.parent().expect("cache dir has a parent");
    std::fs::create_dir_all(parent).with_context(|| {
        format!(
            "creating the cache directory {} (set BPFLAB_CACHE_DIR to use another)",
            parent.display()
        )
    })?;
    // One bpflab at a time fetches into the cache; others wait here, then find the
    // kernel the first one fetched.
    let lock_path = parent.join(format!(".{}.lock", series.series));
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating the lock file {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        ui::status(format!(
            "waiting for another bpflab to finish fetching kernel {}",
            series.series
        ));
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
    }

    if !refresh {
        if let Some(image) = use_cached(&dir, series, arch)? {
            return Ok(image);
        }
    }

    let mirrors = Mirrors::discover(config)?;
    let http = fetch::agent();
    let candidates = resolve(&http, &mirrors, series, arch, &pattern, config)?;

    // Download and unpack next to the final place, then swap it in.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{}-", series.series))
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let deb_path = staging.path().join("package.deb");
    // Mirrors are sometimes behind their own index (a package listed but not yet, or no
    // longer, in the pool): fall back to the next newest candidate, and say so.
    let mut failures = Vec::new();
    let mut chosen = None;
    for (package, suite) in candidates {
        let base = mirrors
            .for_suite(&suite)
            .expect("resolve only returns reachable suites");
        let url = format!("{base}/{}", package.filename);
        let expected = fetch::Expected {
            sha256: package.sha256.clone(),
            size: package.size,
        };
        let label = format!("kernel {} ({})", series.series, package.version);
        match fetch::download(&http, &url, &deb_path, Some(&expected), &label) {
            Ok(()) => {
                chosen = Some((package, suite));
                break;
            }
            Err(e) if e.is::<crate::interrupt::Interrupted>() => return Err(e),
            Err(e) => {
                ui::status(format!(
                    "{} {} unusable, trying an older one: {e:#}",
                    package.name, package.version
                ));
                failures.push(format!("{} {}: {e:#}", package.name, package.version));
            }
        }
    }
    let Some((package, suite)) = chosen else {
        bail!(
            "no package of kernel {} for {arch} could be downloaded:\n  {}",
            series.series,
            failures.join("\n  ")
        );
    };
    let unpacked = deb::extract(&deb_path, staging.path(), |path| {
        let file = path.rsplit('/').next().unwrap_or(path);
        let in_boot = path.starts_with("boot/");
        if (in_boot && file.starts_with("vmlinuz-"))
            || (path.starts_with("usr/lib/modules/") && file == "vmlinuz")
        {
            Some("vmlinuz".into())
        } else if in_boot && file.starts_with("config-") {
            Some("config".into())
        } else {
            None
        }
    })?;
    std::fs::remove_file(&deb_path).ok();
    if !unpacked.iter().any(|(_, out)| out.ends_with("vmlinuz")) {
        bail!("{} {} contains no kernel image (looked for boot/vmlinuz-* and usr/lib/modules/*/vmlinuz)", package.name, package.version);
    }
    let record = CacheRecord {
        image_sha256: fetch::sha256_file(&staging.path().join("vmlinuz"))?,
        has_config: staging.path().join("config").is_file(),
        package,
        suite,
    };
    std::fs::write(
        staging.path().join("record.json"),
        serde_json::to_vec_pretty(&record)?,
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the old {}", dir.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &dir)
        .with_context(|| format!("moving the kernel into {}", dir.display()))?;
    ui::status(format!(
        "downloaded kernel {} for {arch} ({} {}) into {}",
        series.series,
        record.package.name,
        record.package.version,
        dir.display()
    ));
    use_cached(&dir, series, arch)?.context("the kernel just cached cannot be read back")
}

/// The cached kernel, if the cache holds a complete and intact one.
fn use_cached(
    dir: &Path,
    series: &KernelSeries,
    arch: Arch,
) -> anyhow::Result<Option<KernelImage>> {
    let Some(record) = read_record(dir) else {
        return Ok(None);
    };
    let image = dir.join("vmlinuz");
    let intact =
        image.is_file() && fetch::sha256_file(&image).ok().as_deref() == Some(&record.image_sha256);
    if !intact {
        ui::status(format!(
            "cached kernel in {} is damaged (its hash no longer matches); fetching it again",
            dir.display()
        ));
        return Ok(None);
    }
    Ok(Some(KernelImage {
        series: series.series.clone(),
        arch,
        image,
        config: record.has_config.then(|| dir.join("config")),
        origin: format!(
            "{} {} (Debian {})",
            record.package.name, record.package.version, record.suite
        ),
    }))
}

/// The packages matching `pattern` across the series' suites, newest first.
fn resolve(
    http: &ureq::Agent,
    mirrors: &Mirrors,
    series: &KernelSeries,
    arch: Arch,
    pattern: &regex::Regex,
    config: &Config,
) -> anyhow::Result<Vec<(index::Package, String)>> {
    let deb_arch = match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for suite in &series.suites {
        let Some(base) = mirrors.for_suite(suite) else {
            problems.push(format!("{suite}: no security mirror configured"));
            continue;
        };
        let spinner = ui::spinner(format!("reading the package index of {suite} ({deb_arch})"));
        match suite_packages(http, base, suite, deb_arch, pattern, config) {
            Ok(pkgs) => found.extend(pkgs.into_iter().map(|p| (p, suite.clone()))),
            Err(e) => problems.push(format!("{suite}: {e:#}")),
        }
        spinner.finish_and_clear();
    }
    if found.is_empty() {
        bail!(
            "no package for kernel {} on {arch} in Debian suites {} (mirror from {}){}",
            series.series,
            series.suites.join(", "),
            mirrors.origin,
            if problems.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", problems.join("\n  "))
            }
        );
    }
    // Newest first; the same package listed by two suites is tried once.
    let mut ordered = Vec::new();
    while let Some(pkg) = index::newest(found.iter().map(|(p, _)| p.clone())) {
        let pos = found
            .iter()
            .position(|(p, _)| *p == pkg)
            .expect("came from found");
        let (pkg, suite) = found.swap_remove(pos);
        found.retain(|(p, _)| p.filename != pkg.filename);
        ordered.push((pkg, suite));
    }
    Ok(ordered)
}

/// The packages of one suite whose names match, from its verified `Packages.xz`.
fn suite_packages(
    http: &ureq::Agent,
    base: &str,
    suite: &str,
    deb_arch: &str,
    pattern: &regex::Regex,
    config: &Config,
) -> anyhow::Result<Vec<index::Package>> {
    let release = fetch::fetch_text(http, &format!("{base}/dists/{suite}/InRelease"))?;
    let hashes = index::release_sha256(&release);
    let rel_path = format!("main/binary-{deb_arch}/Packages.xz");
    let entry = hashes
        .get(&rel_path)
        .with_context(|| format!("InRelease of {suite} lists no {rel_path}"))?;
    // Indexes are cached by content hash: an unchanged suite costs only its InRelease.
    let cached = config
        .cache_dir
        .join("debian-indexes")
        .join(format!("{}.xz", entry.sha256));
    if !cached.is_file() {
        fetch::download(
            http,
            &format!("{base}/dists/{suite}/{rel_path}"),
            &cached,
            Some(&fetch::Expected {
                sha256: entry.sha256.clone(),
                size: entry.size,
            }),
            &format!("index {suite}/{deb_arch}"),
        )?;
    }
    let mut text = String::new();
    let file =
        std::fs::File::open(&cached).with_context(|| format!("opening {}", cached.display()))?;
    std::io::Read::read_to_string(&mut xz2::read::XzDecoder::new(file), &mut text)
        .with_context(|| format!("decompressing {}", cached.display()))?;
    Ok(index::parse_packages(&text, |name| pattern.is_match(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_specs_are_paths_or_series() {
        assert_eq!(KernelSpec::parse("6.1"), KernelSpec::Series("6.1".into()));
        assert_eq!(
            KernelSpec::parse("7.3-rc"),
            KernelSpec::Series("7.3-rc".into())
        );
        assert_eq!(
            KernelSpec::parse("./bzImage"),
            KernelSpec::Path(PathBuf::from("./bzImage"))
        );
    }
}
