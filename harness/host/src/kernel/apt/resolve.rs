//! Finding packages in an archive: each suite's signed `InRelease`, the `Packages.xz` it
//! vouches for, and the packages there whose names match, newest first.

use anyhow::{bail, Context as _};

use super::{index, mirror::Mirrors, signature, Distribution};
use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::pins::Pinned;
use crate::{fetch, term};

/// Which package to take.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// What it is, for messages (`kernel 6.1`, `busybox`).
    pub what: String,
    /// Whose archive to look in.
    pub distribution: Distribution,
    /// Suites to look in; the newest match across all of them wins.
    pub suites: &'a [String],
    /// Package name pattern.
    pub pattern: regex_lite::Regex,
    /// Architecture.
    pub arch: Arch,
}

/// The newest package matching `query` that the mirror really serves (for `bpflab
/// kernels update`: a pin must be downloadable).
pub fn newest(config: &Config, query: &Query<'_>) -> anyhow::Result<Pinned> {
    let mirrors = Mirrors::discover(config, query.distribution)?;
    let http = fetch::agent();
    let candidates = resolve(&http, &mirrors, query, config)?;
    let mut missing = Vec::new();
    for (package, suite) in candidates {
        let Some(base) = mirrors.for_suite(&suite) else {
            continue;
        };
        let url = format!("{base}/{}", package.filename);
        match http.head(&url).call() {
            Ok(_) => return Ok(Pinned { package, suite }),
            Err(e) => missing.push(format!("{} {}: {e}", package.name, package.version)),
        }
    }
    bail!(
        "the mirror serves none of the packages its index lists for {}:\n  {}",
        query.what,
        missing.join("\n  ")
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The packages matching the query across its suites, newest first.
pub(super) fn resolve(
    http: &ureq::Agent,
    mirrors: &Mirrors,
    query: &Query<'_>,
    config: &Config,
) -> anyhow::Result<Vec<(index::Package, String)>> {
    let deb_arch = query.arch.debian_arch();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for suite in query.suites {
        let Some(base) = mirrors.for_suite(suite) else {
            problems.push(format!("{suite}: no security mirror configured"));
            continue;
        };
        let spinner = term::spinner(format!("reading the package index of {suite} ({deb_arch})"));
        match suite_packages(http, base, suite, query, config) {
            Ok(pkgs) => found.extend(pkgs.into_iter().map(|p| (p, suite.clone()))),
            Err(e) if fetch::no_other_source_helps(&e) => return Err(e),
            Err(e) => problems.push(format!("{suite}: {e:#}")),
        }
        spinner.finish_and_clear();
    }
    if found.is_empty() {
        bail!(
            "no package for {} on {} in {} suites {} (mirror from {}; choose another with {}){}",
            query.what,
            query.arch,
            query.distribution,
            query.suites.join(", "),
            mirrors.origin,
            query.distribution.mirror_env(),
            if problems.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", problems.join("\n  "))
            }
        );
    }
    // Newest first; the same file listed by two suites is tried once.
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
    query: &Query<'_>,
    config: &Config,
) -> anyhow::Result<Vec<index::Package>> {
    let text = suite_index(http, base, suite, query.arch, query.distribution, config)?;
    Ok(index::parse_packages(&text, |name| {
        query.pattern.is_match(name)
    }))
}

/// The text of one suite's `main/binary-<arch>/Packages.xz` at `base`, read only through
/// a chain of hashes from its verified `InRelease`, and cached by content hash.
pub fn suite_index(
    http: &ureq::Agent,
    base: &str,
    suite: &str,
    arch: Arch,
    distribution: Distribution,
    config: &Config,
) -> anyhow::Result<String> {
    let deb_arch = arch.debian_arch();
    let release = fetch::fetch_text(http, &format!("{base}/dists/{suite}/InRelease"))?;
    // Only what the signature covers is read from here on.
    let signed =
        signature::verify_inrelease(&release, &format!("{}'s InRelease", suite), distribution)?;
    let release = index::Release::parse(&signed)?;
    release.check(suite, now_secs(), index::allow_expired(), distribution)?;
    let hashes = release.sha256;
    let rel_path = format!("main/binary-{deb_arch}/Packages.xz");
    let entry = hashes
        .get(&rel_path)
        .with_context(|| format!("InRelease of {suite} lists no {rel_path}"))?;
    // Indexes are cached by content hash: an unchanged suite costs only its InRelease.
    let cached = config
        .cache_dir
        .join("apt-indexes")
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
    // Capped: an index that decompresses to GiBs is refused, not read into memory.
    fetch::limits::xz_text(&cached, fetch::limits::MAX_PACKAGES_INDEX)
}
