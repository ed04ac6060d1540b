//! Minimal kernels built from source: tinyconfig, plus bpflab's config fragments
//! (`kernel-config/`), checked, compiled, cached.
//!
//! The cache key is everything that decides the result: the source's hash, the merged
//! fragments, the arch and the compiler's version. A built kernel is booted with
//! `--kernel <series>-minimal`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::arch::Arch;
use crate::config::{self, Config};
use crate::digest;
use crate::digest::sha256_bytes;
use crate::fetch;
use crate::fetch::limits::{self, AtMost};
use crate::kernel::catalog::{Catalog, KernelSeries};
use crate::kernel::debian::archive;
use crate::kernel::KernelImage;
use crate::sandbox::Sandbox;
use crate::{term, tools};

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
    let (make_arch, cross) = match (arch, Arch::host()) {
        (Arch::X86_64, Some(Arch::X86_64)) => ("x86_64", None),
        (Arch::Arm64, Some(Arch::Arm64)) => ("arm64", None),
        (Arch::X86_64, _) => (
            "x86_64",
            Some(("x86_64-linux-gnu-", "gcc-x86-64-linux-gnu")),
        ),
        (Arch::Arm64, _) => (
            "arm64",
            Some(("aarch64-linux-gnu-", "gcc-aarch64-linux-gnu")),
        ),
    };
    for (tool, package) in [
        ("make", "make"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("pahole", "dwarves"),
    ] {
        tools::require(tool, package)?;
    }
    let gcc = match cross {
        Some((prefix, package)) => tools::require(&format!("{prefix}gcc"), package)?,
        None => tools::require("gcc", "gcc")?,
    };
    let compiler = command_output(Command::new(&gcc).arg("--version"))?;
    let compiler = compiler.lines().next().unwrap_or("").to_string();

    let fragments = fragments(series, flavour, arch)?;
    let key_of = |source_sha: &str| {
        sha256_bytes(format!("{source_sha}\n{}\n{arch}\n{compiler}", fragments.merged).as_bytes())
    };
    let out_dir = built_dir(config, &series.series, flavour, arch);
    let is_built = |key: &str| {
        std::fs::read_to_string(out_dir.join("key")).ok().as_deref() == Some(key)
            && out_dir.join("vmlinuz").is_file()
            // x86-64 builds publish the vmlinux booted through PVH; one made before that
            // was so is rebuilt rather than booted the slow way for ever.
            && (arch != Arch::X86_64 || out_dir.join("vmlinux").is_file())
    };
    // Fast path for every run after the build: the source's hash as its cache entry
    // recorded it, instead of reading the 140 MB tarball again.
    let recorded_sha = archive::record(&config.cache_dir.join("sources").join(&series.series))
        .and_then(|r| r.files.get("linux.tar.xz").cloned());
    if recorded_sha
        .as_deref()
        .is_some_and(|sha| is_built(&key_of(sha)))
    {
        return Ok(built_image(series, flavour, arch, &out_dir, &compiler));
    }

    let (tarball, source_sha) = source_tarball(config, series, arch)?;
    let key = key_of(&source_sha);
    let name = flavour.kernel_name(&series.series);
    let parent = out_dir.parent().expect("has a parent");
    // A second bpflab asking for the same kernel waits for this build and then uses it.
    let _lock = crate::file_lock::acquire(parent, &name, &format!("building {name} for {arch}"))?;
    if is_built(&key) {
        return Ok(built_image(series, flavour, arch, &out_dir, &compiler));
    }

    // Work in a scratch tree next to the cache; it is removed afterwards, whatever happens
    // (and by the next build if this process is killed).
    // The tree's own scripts run as an unprivileged user when bpflab is root (see
    // `sandbox`), who must be able to reach the tree: root's cache is under a home only
    // root may enter, so root builds in the temporary directory instead.
    let sandbox = Sandbox::for_builds();
    let work_parent = if sandbox.drops_privileges() {
        std::env::temp_dir()
    } else {
        parent.to_path_buf()
    };
    let work = tempfile::Builder::new()
        .prefix(&crate::file_lock::scratch_prefix(&name))
        .tempdir_in(&work_parent)
        .context("creating a build directory")?;
    let src = work.path().join("src");
    let spinner = term::spinner(format!("unpacking the {} source", series.series));
    unpack_source(&tarball, &src)?;
    // bpflab's own fragment file, then the whole tree, handed to the build user.
    let fragment_file = work.path().join("bpflab.config");
    std::fs::write(&fragment_file, &fragments.merged)?;
    sandbox.give_tree(work.path())?;
    spinner.finish_and_clear();

    let make = |args: &[&str]| {
        let mut cmd = Command::new("make");
        cmd.current_dir(&src).arg(format!("ARCH={make_arch}"));
        if let Some((prefix, _)) = cross {
            cmd.arg(format!("CROSS_COMPILE={prefix}"));
        }
        // Old trees and new compilers: GCC 10 made -fno-common the default, which 4.x
        // does not link with.
        if series.series.starts_with("4.") {
            cmd.arg("HOSTCFLAGS=-fcommon");
        }
        cmd.args(args);
        sandbox.confine(&mut cmd);
        cmd
    };
    run_quiet(make(&["tinyconfig"]), "make tinyconfig")?;
    let mut merge = Command::new("sh");
    merge
        .current_dir(&src)
        .arg("scripts/kconfig/merge_config.sh")
        .args(["-m", ".config"])
        .arg(&fragment_file)
        .env("ARCH", make_arch);
    sandbox.confine(&mut merge);
    run_quiet(merge, "merging bpflab's config fragments")?;
    run_quiet(make(&["olddefconfig"]), "make olddefconfig")?;
    let dot_config =
        std::fs::read_to_string(src.join(".config")).context("reading the merged .config")?;
    let dropped = missing_options(&dot_config, &fragments.required);
    if !dropped.is_empty() {
        bail!(
            "Kconfig dropped options bpflab needs for {} on {arch} (their dependencies are not met): {}. \
             Add what they depend on to kernel-config/ (series quirks go in kernel-config/series/{}.config)",
            series.series,
            dropped.join(", "),
            series.series
        );
    }

    let target = match arch {
        Arch::X86_64 => "bzImage",
        Arch::Arm64 => "Image",
    };
    let log_path = config
        .cache_dir
        .join("kernels")
        .join(format!("build-{name}-{arch}.log"));
    let jobs_arg = format!("-j{}", jobs.max(1));
    build_with_progress(
        make(&[jobs_arg.as_str(), target]),
        &log_path,
        &format!("building {name} for {arch}"),
    )?;

    // Publish: image, config and key, swapped in as a whole.
    // Staged next to its final place (the build tree may be on another file system).
    let staging = tempfile::Builder::new()
        .prefix(&crate::file_lock::scratch_prefix(&name))
        .tempdir_in(parent)
        .context("creating a staging directory")?;
    let staged = staging.path().join("out");
    std::fs::create_dir_all(&staged)?;
    let built = src.join("arch").join(make_arch).join("boot").join(target);
    std::fs::copy(&built, staged.join("vmlinuz"))
        .with_context(|| format!("copying {}", built.display()))?;
    if arch == Arch::X86_64 {
        // QEMU boots an x86-64 vmlinux directly through its PVH entry: no decompression,
        // which under emulation saves more than a second. Debug info is stripped; BTF,
        // which the lessons need, is a section of its own and stays.
        let objcopy = match cross {
            Some((prefix, _)) => format!("{prefix}objcopy"),
            None => "objcopy".to_string(),
        };
        let mut strip = Command::new(objcopy);
        strip
            .arg("--strip-debug")
            .arg(src.join("vmlinux"))
            .arg(staged.join("vmlinux"));
        run_quiet(strip, "stripping vmlinux")?;
    }
    std::fs::write(staged.join("config"), &dot_config)?;
    std::fs::write(staged.join("compiler"), &compiler)?;
    std::fs::write(staged.join("key"), &key)?;
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir)
            .with_context(|| format!("removing the old {}", out_dir.display()))?;
    }
    std::fs::rename(&staged, &out_dir)
        .with_context(|| format!("moving the kernel into {}", out_dir.display()))?;
    term::status(format!(
        "built {name} for {arch}: {} ({} KiB); build log {}",
        out_dir.join("vmlinuz").display(),
        std::fs::metadata(out_dir.join("vmlinuz"))?.len() / 1024,
        log_path.display()
    ));
    Ok(built_image(series, flavour, arch, &out_dir, &compiler))
}

fn built_image(
    series: &KernelSeries,
    flavour: Flavour,
    arch: Arch,
    dir: &Path,
    compiler: &str,
) -> KernelImage {
    // The uncompressed vmlinux where there is one (x86-64, PVH), else the arch's image.
    let image = Some(dir.join("vmlinux"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| dir.join("vmlinuz"));
    KernelImage {
        series: flavour.kernel_name(&series.series),
        arch,
        image,
        config: Some(dir.join("config")),
        origin: format!(
            "{} {} built from source with {compiler}",
            flavour.name(),
            series.series
        ),
    }
}

/// The merged fragments and the options they require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragments {
    /// `CONFIG_X=y` lines, comments removed, in merge order.
    pub merged: String,
    /// Options marked `# required`.
    pub required: Vec<String>,
}

/// Reads base, arch, flavour and series fragments from `kernel-config/`.
pub fn fragments(series: &KernelSeries, flavour: Flavour, arch: Arch) -> anyhow::Result<Fragments> {
    let dir = config::source_root().join("kernel-config");
    let mut texts = Vec::new();
    // Series quirks come last: they may have to override what the others ask for.
    let names = [
        Some("base.config".to_string()),
        Some(format!("{}.config", arch.name())),
        flavour.fragment().map(str::to_string),
        Some(format!("series/{}.config", series.series)),
    ];
    for name in names.into_iter().flatten() {
        let path = dir.join(&name);
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.starts_with("series/") => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(parse_fragments(&texts.join("\n")))
}

/// Strips comments (Kconfig does not accept them after a value) and collects the
/// options marked `# required`.
pub fn parse_fragments(text: &str) -> Fragments {
    let mut merged = String::new();
    let mut required = Vec::new();
    for line in text.lines() {
        let (setting, comment) = match line.split_once('#') {
            Some((s, c)) => (s.trim(), c.trim()),
            None => (line.trim(), ""),
        };
        if setting.is_empty() {
            continue;
        }
        merged.push_str(setting);
        merged.push('\n');
        if comment == "required" {
            if let Some((name, _)) = setting.split_once('=') {
                required.push(name.to_string());
            }
        }
    }
    Fragments { merged, required }
}

/// Required options that are not `=y` in a `.config`.
pub fn missing_options(dot_config: &str, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|name| !dot_config.lines().any(|l| l == format!("{name}=y")))
        .cloned()
        .collect()
}

/// The source tarball of a series and its hash: from Debian's `linux-source-*`, or
/// kernel.org.
fn source_tarball(
    config: &Config,
    series: &KernelSeries,
    arch: Arch,
) -> anyhow::Result<(PathBuf, String)> {
    let spec = series
        .source
        .as_ref()
        .with_context(|| format!("the catalog names no source for kernel {}", series.series))?;
    let dir = config.cache_dir.join("sources").join(&series.series);
    let mut problems = Vec::new();
    // Building a kernel runs its Makefiles: only a source pinned in the lock is used.
    let lock = crate::kernel::pins::KernelLock::load(&crate::kernel::pins::lock_path())?;
    if let Some(pattern) = &spec.debian {
        let query = archive::Query {
            what: format!("linux source {}", series.series),
            suites: &series.suites,
            pattern: regex::Regex::new(pattern).context("source package pattern")?,
            arch,
        };
        let Some(pinned) = lock.find_source_package(&series.series) else {
            bail!(
                "the source package of kernel {} is not pinned in {}: run `bpflab kernels \
                 update` to pin the newest (building runs the source's own scripts, so bpflab \
                 builds only a source whose hash is pinned)",
                series.series,
                crate::kernel::pins::lock_path().display()
            );
        };
        let picked = archive::obtain(config, &query, &dir, false, Some(pinned), |path| {
            (path.starts_with("usr/src/linux-source-") && path.ends_with(".tar.xz"))
                .then(|| "linux.tar.xz".to_string())
        });
        match picked {
            Ok(record) => match record.files.get("linux.tar.xz") {
                Some(sha) => return Ok((dir.join("linux.tar.xz"), sha.clone())),
                None => problems.push(format!(
                    "{} has no usr/src/linux-source-*.tar.xz",
                    record.package.name
                )),
            },
            Err(e) if fetch::no_other_source_helps(&e) => return Err(e),
            Err(e) => problems.push(format!("Debian: {e:#}")),
        }
    }
    if let Some(url) = &spec.kernel_org {
        let dest = dir.join("linux.tar.xz");
        // The catalog's hash, or the one `bpflab kernels update` pinned from kernel.org's
        // signed listing. Without one, neither a download nor a cached file is used.
        let pinned = spec
            .sha256
            .clone()
            .or_else(|| lock.source_sha256(&series.series, url).map(str::to_string));
        let Some(pinned) = pinned else {
            bail!(
                "{url} has no pinned SHA-256: run `bpflab kernels update` where kernel.org is \
                 reachable (it pins the hash from kernel.org's signed sha256sums.asc), or give \
                 `source.sha256` in images/catalog.toml; nothing was downloaded or built"
            );
        };
        if dest.is_file() {
            let sha = digest::sha256_file(&dest)?;
            if sha == pinned {
                return Ok((dest, sha));
            }
            term::status(format!(
                "the cached source of {} does not match its pinned SHA-256; fetching it again",
                series.series
            ));
            std::fs::remove_file(&dest).ok();
        }
        let result = fetch::download(
            &fetch::agent(),
            url,
            &dest,
            None,
            &format!("linux {}", series.series),
        );
        if let Err(e) = result {
            if fetch::no_other_source_helps(&e) {
                return Err(e);
            }
            problems.push(format!("kernel.org: {e:#}"));
        } else {
            let sha = digest::sha256_file(&dest)?;
            if sha != pinned {
                std::fs::remove_file(&dest).ok();
                bail!("{url}: SHA-256 {sha} does not match the pinned {pinned}; nothing was kept");
            }
            return Ok((dest, sha));
        }
    }
    bail!(
        "no source for kernel {} can be obtained on this machine:\n  {}",
        series.series,
        problems.join("\n  ")
    )
}

/// How much a source tarball may unpack to.
#[derive(Debug, Clone, Copy)]
struct TreeLimits {
    /// The tar stream, decompressed.
    bytes: u64,
    /// Its entries: files, directories, links.
    entries: u64,
}

const SOURCE_TREE: TreeLimits = TreeLimits {
    bytes: limits::MAX_SOURCE_TREE_BYTES,
    entries: limits::MAX_SOURCE_TREE_ENTRIES,
};

/// Unpacks a `.tar.xz` kernel source into `dest`, which must not exist yet, dropping its
/// top directory. The tarball comes from the network: every entry must stay inside
/// `dest` (see [`Tree::unpack`]) and the whole within [`SOURCE_TREE`], or nothing is
/// kept (`dest` is removed) and the error names the entry.
fn unpack_source(tarball: &Path, dest: &Path) -> anyhow::Result<()> {
    unpack_source_within(tarball, dest, SOURCE_TREE)
}

fn unpack_source_within(tarball: &Path, dest: &Path, caps: TreeLimits) -> anyhow::Result<()> {
    // A fresh directory: nothing in it was put there by anyone else (no planted symlink).
    std::fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    let result = unpack_tree(tarball, dest, caps);
    if result.is_err() {
        std::fs::remove_dir_all(dest).ok();
    }
    result.map_err(|e| {
        if let Some(too_large) = limits::exceeded(&e) {
            return anyhow::anyhow!(
                "unpacking {}: {too_large}: {}",
                tarball.display(),
                limits::TOO_LARGE_HINT
            );
        }
        let hint = match e.is::<Refused>() {
            true => {
                ". Delete it to fetch the source again; if this repeats, it is not a kernel source"
            }
            false => "",
        };
        e.context(format!(
            "unpacking {}; nothing was kept{hint}",
            tarball.display()
        ))
    })
}

/// An entry of a source tarball that could reach outside the tree.
#[derive(Debug, thiserror::Error)]
#[error("the entry `{entry}` {why}")]
struct Refused {
    entry: String,
    why: String,
}

fn unpack_tree(tarball: &Path, dest: &Path, caps: TreeLimits) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    let xz = xz2::read::XzDecoder::new(BufReader::new(file));
    let mut archive = tar::Archive::new(AtMost::new(xz, caps.bytes, "the source, decompressed,"));
    let mut tree = Tree {
        root: dest,
        files: HashSet::new(),
    };
    for (count, entry) in archive.entries()?.enumerate() {
        crate::interrupt::check()?;
        if count as u64 >= caps.entries {
            bail!(
                "the source has more than {} entries, bpflab's cap for a kernel tree (a 6.x \
                 tree has about 90,000); a real tree this large would be a bpflab bug, please \
                 report it",
                caps.entries
            );
        }
        tree.unpack(&mut entry?)?;
    }
    Ok(())
}

/// A source tree being unpacked, and what it holds so far.
struct Tree<'a> {
    root: &'a Path,
    /// The regular files unpacked, relative to the root: the only targets a hard link may
    /// have.
    files: HashSet<PathBuf>,
}

impl Tree<'_> {
    /// Unpacks one entry, refusing anything that could reach outside the tree: a path
    /// that is not plain names below the top directory (`..`, absolute), a symlink out of
    /// the tree, a hard link to anything but a file already unpacked, a write through a
    /// symlink (git trees never have files below a symlink), and special files.
    fn unpack(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> anyhow::Result<()> {
        let name = entry.path()?.into_owned();
        let kind = entry.header().entry_type();
        // git archive's commit id; nothing to unpack.
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let refuse = |why: &str| {
            anyhow::Error::new(Refused {
                entry: name.display().to_string(),
                why: why.to_string(),
            })
        };
        let Some(rel) = below_top(&name).map_err(refuse)? else {
            return Ok(());
        };
        self.make_parents(&rel).map_err(|why| refuse(&why))?;
        let target = self.root.join(&rel);
        let link = || {
            entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.into_owned())
                .ok_or_else(|| refuse("is a link without a target"))
        };
        match kind {
            tar::EntryType::Directory => self.make_dir(&rel).map_err(|why| refuse(&why))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                entry
                    .unpack(&target)
                    .with_context(|| format!("unpacking `{}`", name.display()))?;
                self.files.insert(rel);
            }
            tar::EntryType::Symlink => {
                let to = link()?;
                symlink_stays_inside(&rel, &to)
                    .map_err(|why| refuse(&format!("{why} (to `{}`)", to.display())))?;
                std::os::unix::fs::symlink(&to, &target)
                    .with_context(|| format!("unpacking the symlink `{}`", name.display()))?;
            }
            tar::EntryType::Link => {
                let to = link()?;
                let to_rel = below_top(&to)
                    .ok()
                    .flatten()
                    .filter(|t| self.files.contains(t))
                    .ok_or_else(|| {
                        refuse(&format!(
                            "is a hard link to `{}`, which is not a file unpacked before it",
                            to.display()
                        ))
                    })?;
                std::fs::hard_link(self.root.join(to_rel), &target)
                    .with_context(|| format!("unpacking the hard link `{}`", name.display()))?;
            }
            other => return Err(refuse(&format!("is a {other:?}, which no source tree has"))),
        }
        Ok(())
    }

    /// Creates the directories above `rel` that do not exist yet; each that does must be
    /// a real directory, never a symlink that would take the write elsewhere.
    fn make_parents(&self, rel: &Path) -> Result<(), String> {
        let mut ancestors: Vec<&Path> = rel.ancestors().skip(1).collect();
        ancestors.pop(); // the empty path: the root itself
        for dir in ancestors.into_iter().rev() {
            self.make_dir(dir)?;
        }
        Ok(())
    }

    fn make_dir(&self, rel: &Path) -> Result<(), String> {
        let path = self.root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => Err(format!(
                "would be written through the symlink `{}`",
                rel.display()
            )),
            Ok(_) => Err(format!(
                "needs `{}` to be a directory, but it is a file",
                rel.display()
            )),
            Err(_) => std::fs::create_dir(&path)
                .map_err(|e| format!("cannot create `{}`: {e}", rel.display())),
        }
    }
}

/// An archive path without its top directory (`linux-6.1/`): `None` for the top
/// directory itself, an error unless every component is a plain name.
fn below_top(path: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut components = path.components();
    let plain = |c: Component<'_>| match c {
        Component::Normal(_) => Ok(()),
        Component::ParentDir => Err("leaves the source tree (`..`)"),
        Component::RootDir | Component::Prefix(_) => Err("is an absolute path"),
        Component::CurDir => Err("does not start with the tree's top directory"),
    };
    match components.next() {
        Some(top) => plain(top)?,
        None => return Err("has an empty name"),
    }
    let rest: PathBuf = components.clone().collect();
    for c in components {
        plain(c)?;
    }
    Ok((!rest.as_os_str().is_empty()).then_some(rest))
}

/// Whether a symlink at `link` (relative to the tree's root) to `to` resolves inside the
/// tree: a relative target that climbs (`..`) at most to the root, and only before its
/// first name: a `..` after a name would climb out of wherever a symlinked directory of
/// that name led. Kernel trees' own symlinks (`arch/arm64/boot/dts/arm ->
/// ../../../arm/boot/dts`) are of that shape.
fn symlink_stays_inside(link: &Path, to: &Path) -> Result<(), &'static str> {
    let mut depth = link.components().count().saturating_sub(1);
    let mut named = false;
    if to.as_os_str().is_empty() {
        return Err("is a symlink without a target");
    }
    for c in to.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(_) => named = true,
            Component::ParentDir if named => {
                return Err("is a symlink that climbs (`..`) after a name, out of reach of a check")
            }
            Component::ParentDir if depth == 0 => {
                return Err("is a symlink out of the source tree")
            }
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => {
                return Err("is a symlink to an absolute path, out of the source tree")
            }
        }
    }
    Ok(())
}

fn run_quiet(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("running {what}"))?;
    // Ctrl-C reaches make too (same terminal): its failure is the interruption.
    crate::interrupt::check()?;
    if !output.status.success() {
        bail!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd.output().context("running the compiler")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the build, showing its latest line on a spinner and keeping the whole log.
fn build_with_progress(mut cmd: Command, log_path: &Path, what: &str) -> anyhow::Result<()> {
    let mut log = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    use std::os::unix::process::CommandExt as _;
    // make and its compilers in a process group of their own, so that Ctrl-C stops every
    // one of them (even while make prints nothing, as when linking vmlinux).
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let group = child.id() as libc::pid_t;
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !finished.load(Ordering::SeqCst) {
                if crate::interrupt::interrupted() {
                    // SAFETY: signals the group we created; it exists until we reap make.
                    unsafe { libc::kill(-group, libc::SIGTERM) };
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let spinner = term::spinner(what.to_string());
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        use std::io::Write;
        let _ = writeln!(log, "{line}");
        spinner.set_message(format!("{what}: {}", line.trim()));
    }
    let status = child.wait()?;
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.join();
    spinner.finish_and_clear();
    let errors = err_thread.join().unwrap_or_default();
    {
        use std::io::Write;
        for line in &errors {
            let _ = writeln!(log, "{line}");
        }
    }
    crate::interrupt::check()?;
    if !status.success() {
        let tail: Vec<&String> = errors.iter().rev().take(25).rev().collect();
        bail!(
            "{what} failed ({status}); the last messages:\n  {}\nwhole log: {}",
            tail.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            log_path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of a crafted source tarball.
    enum Crafted<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Script(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Fifo(&'a str),
        /// What git archive puts first: the commit id.
        GlobalHeader,
    }

    /// Writes a `.tar.xz` of `entries` to `path`. Names and link targets go into the
    /// headers as raw bytes: tar's own setters refuse `..` and absolute paths, which is
    /// what these tarballs are made of.
    fn crafted_tarball(path: &Path, entries: &[Crafted<'_>]) {
        use tar::EntryType as T;
        let mut tar = tar::Builder::new(Vec::new());
        for entry in entries {
            let (name, kind, link, body, mode): (&str, T, &str, &[u8], u32) = match *entry {
                Crafted::Dir(n) => (n, T::Directory, "", b"", 0o755),
                Crafted::File(n, body) => (n, T::Regular, "", body, 0o644),
                Crafted::Script(n, body) => (n, T::Regular, "", body, 0o755),
                Crafted::Symlink(n, to) => (n, T::Symlink, to, b"", 0o777),
                Crafted::HardLink(n, to) => (n, T::Link, to, b"", 0o644),
                Crafted::Fifo(n) => (n, T::Fifo, "", b"", 0o644),
                Crafted::GlobalHeader => (
                    "pax_global_header",
                    T::XGlobalHeader,
                    "",
                    b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
                    0o644,
                ),
            };
            let mut header = tar::Header::new_gnu();
            let raw = header.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_size(body.len() as u64);
            header.set_mode(mode);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            tar.append(&header, body).unwrap();
        }
        let mut xz = xz2::write::XzEncoder::new(std::fs::File::create(path).unwrap(), 1);
        std::io::Write::write_all(&mut xz, &tar.into_inner().unwrap()).unwrap();
        xz.finish().unwrap();
    }

    /// Unpacks `entries` into `<tmp>/a/b/src` (deep enough that an escape lands inside
    /// `<tmp>`, where the test looks for it); returns the temp dir and the result.
    fn unpack_crafted(entries: &[Crafted<'_>]) -> (tempfile::TempDir, anyhow::Result<()>) {
        unpack_crafted_within(entries, SOURCE_TREE)
    }

    fn unpack_crafted_within(
        entries: &[Crafted<'_>],
        caps: TreeLimits,
    ) -> (tempfile::TempDir, anyhow::Result<()>) {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("linux.tar.xz");
        crafted_tarball(&tarball, entries);
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        let result = unpack_source_within(&tarball, &tmp.path().join("a/b/src"), caps);
        (tmp, result)
    }

    /// Asserts that unpacking failed naming `entry` and saying `why`, and kept nothing.
    fn assert_refused(tmp: &tempfile::TempDir, result: anyhow::Result<()>, entry: &str, why: &str) {
        let msg = format!("{:#}", result.expect_err("the tarball was unpacked"));
        assert!(
            msg.contains(&format!("`{entry}`")) && msg.contains(why),
            "{msg}"
        );
        assert!(msg.contains("nothing was kept"), "{msg}");
        assert!(
            !tmp.path().join("a/b/src").exists(),
            "the tree was left behind"
        );
    }

    #[test]
    fn a_kernel_tree_unpacks_with_its_in_tree_links_and_modes() {
        let (tmp, result) = unpack_crafted(&[
            Crafted::GlobalHeader,
            Crafted::Dir("linux-6.1/"),
            Crafted::File("linux-6.1/Makefile", b"VERSION = 6\n"),
            // No entry for scripts/: parents are made as needed.
            Crafted::Script("linux-6.1/scripts/config", b"#!/bin/sh\n"),
            Crafted::Dir("linux-6.1/arch/arm/boot/dts/"),
            Crafted::File("linux-6.1/arch/arm/boot/dts/board.dts", b"/dts-v1/;\n"),
            Crafted::Symlink("linux-6.1/arch/arm64/boot/dts/arm", "../../../arm/boot/dts"),
            Crafted::Symlink("linux-6.1/tools/include/uapi", "./linux"),
            Crafted::HardLink("linux-6.1/Makefile.copy", "linux-6.1/Makefile"),
        ]);
        result.unwrap();
        let src = tmp.path().join("a/b/src");
        assert_eq!(
            std::fs::read(src.join("Makefile")).unwrap(),
            b"VERSION = 6\n"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(src.join("scripts/config"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "scripts stay executable");
        assert_eq!(
            std::fs::read(src.join("arch/arm64/boot/dts/arm/board.dts")).unwrap(),
            b"/dts-v1/;\n",
            "the in-tree symlink leads where it should"
        );
        assert_eq!(
            std::fs::read_link(src.join("tools/include/uapi")).unwrap(),
            Path::new("./linux")
        );
        assert_eq!(
            std::fs::read(src.join("Makefile.copy")).unwrap(),
            b"VERSION = 6\n"
        );
        assert!(!src.join("pax_global_header").exists());
    }

    #[test]
    fn a_source_entry_climbing_out_with_dotdot_is_refused() {
        let (tmp, result) = unpack_crafted(&[
            Crafted::File("linux/Makefile", b"all:\n"),
            Crafted::File("linux/../escape", b"owned\n"),
        ]);
        assert!(
            !tmp.path().join("a/b/escape").exists(),
            "written outside the tree"
        );
        assert_refused(&tmp, result, "linux/../escape", "leaves the source tree");
    }

    #[test]
    fn an_absolute_source_entry_is_refused() {
        let (tmp, result) = unpack_crafted(&[Crafted::File("/linux/etc/profile", b"owned\n")]);
        assert_refused(&tmp, result, "/linux/etc/profile", "is an absolute path");
    }

    #[test]
    fn a_symlink_out_of_the_source_tree_and_a_file_written_through_it_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        let (tmp, result) = unpack_crafted(&[
            Crafted::Symlink("linux/evil", &target),
            Crafted::File("linux/evil/owned", b"owned\n"),
        ]);
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "written outside"
        );
        assert_refused(&tmp, result, "linux/evil", "symlink to an absolute path");
        // The same with a relative symlink climbing above the tree: `src/up` is `<tmp>/a`.
        let (tmp, result) = unpack_crafted(&[
            Crafted::Symlink("linux/up", "../.."),
            Crafted::File("linux/up/owned", b"owned\n"),
        ]);
        assert!(
            !tmp.path().join("a/owned").exists(),
            "written outside the tree"
        );
        assert_refused(&tmp, result, "linux/up", "symlink out of the source tree");
        // And one that could only be judged by following another symlink.
        let (tmp, result) = unpack_crafted(&[Crafted::Symlink("linux/sneaky", "arch/../../..")]);
        assert_refused(&tmp, result, "linux/sneaky", "climbs (`..`) after a name");
    }

    #[test]
    fn a_file_is_never_written_through_a_symlink_even_inside_the_tree() {
        let (tmp, result) = unpack_crafted(&[
            Crafted::Dir("linux/real/"),
            Crafted::Symlink("linux/link", "real"),
            Crafted::File("linux/link/file", b"x\n"),
        ]);
        assert_refused(
            &tmp,
            result,
            "linux/link/file",
            "written through the symlink `link`",
        );
    }

    #[test]
    fn a_hard_link_out_of_the_source_tree_is_refused() {
        use std::os::unix::fs::MetadataExt as _;
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"secret\n").unwrap();
        let (tmp, result) =
            unpack_crafted(&[Crafted::HardLink("linux/stolen", secret.to_str().unwrap())]);
        assert_eq!(
            std::fs::metadata(&secret).unwrap().nlink(),
            1,
            "linked from the tree"
        );
        assert_refused(
            &tmp,
            result,
            "linux/stolen",
            "which is not a file unpacked before it",
        );
        // Inside the tree, but to a path not unpacked (yet): what would be there is unknown.
        let (tmp, result) = unpack_crafted(&[
            Crafted::HardLink("linux/early", "linux/later"),
            Crafted::File("linux/later", b"x\n"),
        ]);
        assert_refused(
            &tmp,
            result,
            "linux/early",
            "which is not a file unpacked before it",
        );
    }

    #[test]
    fn special_files_in_a_source_tarball_are_refused() {
        let (tmp, result) = unpack_crafted(&[Crafted::Fifo("linux/pipe")]);
        assert_refused(&tmp, result, "linux/pipe", "no source tree has");
    }

    #[test]
    fn a_source_tarball_past_its_caps_is_refused() {
        let names: Vec<String> = (0..20).map(|i| format!("linux/file{i}")).collect();
        let many: Vec<Crafted<'_>> = names.iter().map(|n| Crafted::File(n, b"x")).collect();
        let few_entries = TreeLimits {
            bytes: 1 << 30,
            entries: 10,
        };
        let (tmp, result) = unpack_crafted_within(&many, few_entries);
        let msg = format!("{:#}", result.unwrap_err());
        assert!(
            msg.contains("more than 10 entries") && msg.contains("nothing was kept"),
            "{msg}"
        );
        assert!(!tmp.path().join("a/b/src").exists());

        let big = vec![0u8; 2 << 20];
        let few_bytes = TreeLimits {
            bytes: 1 << 20,
            entries: 100,
        };
        let (tmp, result) = unpack_crafted_within(&[Crafted::File("linux/big", &big)], few_bytes);
        let msg = format!("{:#}", result.unwrap_err());
        assert!(
            msg.contains("the source, decompressed, is larger than 1 MiB")
                && msg.contains("nothing was kept"),
            "{msg}"
        );
        assert!(!tmp.path().join("a/b/src").exists());
    }

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

    #[test]
    fn fragments_lose_comments_and_name_their_required_options() {
        let f = parse_fragments(
            "# header\nCONFIG_BPF=y\nCONFIG_KPROBES=y  # required\n\nCONFIG_X=n # why\n",
        );
        assert_eq!(f.merged, "CONFIG_BPF=y\nCONFIG_KPROBES=y\nCONFIG_X=n\n");
        assert_eq!(f.required, ["CONFIG_KPROBES"]);
    }

    #[test]
    fn dropped_options_are_listed() {
        let dot_config = "CONFIG_BPF_SYSCALL=y\n# CONFIG_KPROBES is not set\n";
        let required = vec![
            "CONFIG_BPF_SYSCALL".to_string(),
            "CONFIG_KPROBES".to_string(),
        ];
        assert_eq!(missing_options(dot_config, &required), ["CONFIG_KPROBES"]);
    }

    #[test]
    fn the_shipped_fragments_require_what_the_lessons_need() {
        let catalog = Catalog::load(&config::source_root().join("images/catalog.toml")).unwrap();
        let f = fragments(catalog.find("6.1").unwrap(), Flavour::Minimal, Arch::X86_64).unwrap();
        for needed in [
            "CONFIG_BPF_SYSCALL",
            "CONFIG_KPROBES",
            "CONFIG_DEBUG_INFO_BTF",
            "CONFIG_SERIAL_8250_CONSOLE",
        ] {
            assert!(
                f.required.iter().any(|r| r == needed),
                "{needed} not required"
            );
        }
        let arm = fragments(catalog.find("6.1").unwrap(), Flavour::Minimal, Arch::Arm64).unwrap();
        assert!(arm
            .required
            .iter()
            .any(|r| r == "CONFIG_SERIAL_AMBA_PL011_CONSOLE"));
    }
}
