//! Minimal kernels built from source: tinyconfig, plus bpflab's config fragments
//! (`kernel-config/`), checked, compiled, cached.
//!
//! The cache key is everything that decides the result: the source's hash, the merged
//! fragments, the arch and the compiler's version. A built kernel is booted with
//! `--kernel <series>-minimal`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::arch::Arch;
use crate::catalog::{Catalog, KernelSeries};
use crate::config::{self, Config};
use crate::debian::archive;
use crate::fetch::{self, sha256_bytes};
use crate::kernel::KernelImage;
use crate::{tools, ui};

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
    let _lock = crate::cache_lock::acquire(parent, &name, &format!("building {name} for {arch}"))?;
    if is_built(&key) {
        return Ok(built_image(series, flavour, arch, &out_dir, &compiler));
    }

    // Work in a scratch tree next to the cache; it is removed afterwards, whatever happens
    // (and by the next build if this process is killed).
    let work = tempfile::Builder::new()
        .prefix(&crate::cache_lock::scratch_prefix(&name))
        .tempdir_in(parent)
        .context("creating a build directory")?;
    let src = work.path().join("src");
    let spinner = ui::spinner(format!("unpacking the {} source", series.series));
    unpack_source(&tarball, &src)?;
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
        cmd
    };
    run_quiet(make(&["tinyconfig"]), "make tinyconfig")?;
    let fragment_file = work.path().join("bpflab.config");
    std::fs::write(&fragment_file, &fragments.merged)?;
    let mut merge = Command::new("sh");
    merge
        .current_dir(&src)
        .arg("scripts/kconfig/merge_config.sh")
        .args(["-m", ".config"])
        .arg(&fragment_file)
        .env("ARCH", make_arch);
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
    let staged = work.path().join("out");
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
    ui::status(format!(
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
    let lock = crate::lock::KernelLock::load(&crate::kernel::lock_path())?;
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
                crate::kernel::lock_path().display()
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
            let sha = fetch::sha256_file(&dest)?;
            if sha == pinned {
                return Ok((dest, sha));
            }
            ui::status(format!(
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
            let sha = fetch::sha256_file(&dest)?;
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

/// Unpacks a `.tar.xz` kernel source into `dest`, dropping its top directory.
fn unpack_source(tarball: &Path, dest: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    let mut archive = tar::Archive::new(xz2::read::XzDecoder::new(std::io::BufReader::new(file)));
    for entry in archive.entries()? {
        crate::interrupt::check()?;
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let stripped: PathBuf = path.components().skip(1).collect();
        if stripped.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(stripped);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        entry
            .unpack(&target)
            .with_context(|| format!("unpacking {}", path.display()))?;
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
    let spinner = ui::spinner(what.to_string());
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
