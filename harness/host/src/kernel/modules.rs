//! Kernel modules a lesson asks for (`kernel_modules = ["veth"]` in its `lesson.toml`),
//! taken from the booted kernel's own packages: the same pinned, verified `.deb` the
//! kernel image came from, or the one pinned beside it at the same version where the
//! modules are packaged apart (Ubuntu's `linux-modules-*`, Debian's from 7.x), so the
//! module is built for exactly that kernel. Debian's
//! kernels have most drivers as modules (`=m`): the packet lessons need `veth.ko`.
//!
//! Only when the kernel's config says the driver is a module: built in (`=y`), there is
//! nothing to load; absent, the guest finds no driver and the lesson says it is
//! unsupported, naming it. A kernel bpflab built has what its fragments give it, built
//! in; a kernel given by path has no package to take modules from.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::archive;
use crate::kernel::catalog::{Catalog, KernelSeries};
use crate::kernel::pins::{self, Pinned};
use crate::kernel::KernelImage;

/// A module lessons may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModule {
    /// Its name, as `lesson.toml` and `/sys/module` say it.
    pub name: &'static str,
    /// The config option that builds it.
    pub option: &'static str,
    /// Its path below `lib/modules/<release>/`, without the `.ko` (and any `.xz`).
    pub path: &'static str,
}

/// Every module a lesson may ask for.
pub const KNOWN: &[KnownModule] = &[
    KnownModule {
        name: "veth",
        option: "CONFIG_VETH",
        path: "kernel/drivers/net/veth",
    },
    // The ingress and clsact qdiscs (clsact: 4.5), which tc programs hang on before TCX.
    KnownModule {
        name: "sch_ingress",
        option: "CONFIG_NET_SCH_INGRESS",
        path: "kernel/net/sched/sch_ingress",
    },
    // The bpf filter, direct-action mode included (4.4).
    KnownModule {
        name: "cls_bpf",
        option: "CONFIG_NET_CLS_BPF",
        path: "kernel/net/sched/cls_bpf",
    },
];

/// The module `name`, if lessons may ask for it.
pub fn known(name: &str) -> Option<&'static KnownModule> {
    KNOWN.iter().find(|m| m.name == name)
}

/// How a kernel's config has an option: `y`, `m`, or not at all (`None`).
pub fn option_value(config: &str, option: &str) -> Option<char> {
    let prefix = format!("{option}=");
    config
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.chars().next())
        .filter(|c| matches!(c, 'y' | 'm'))
}

/// The files of `names` to put in the initramfs for `kernel`, as (name, file): those its
/// config builds as modules, taken from its package (downloaded again, once, into a
/// cache entry of their own beside the kernel's). None for a kernel without a package or
/// a config, or where the config builds them in or not at all.
pub fn for_kernel(
    config: &Config,
    catalog: &Catalog,
    kernel: &KernelImage,
    names: &[String],
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let (Some(pinned), Some(config_path)) = (&kernel.package, &kernel.config) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let wanted: Vec<&KnownModule> = names
        .iter()
        .filter_map(|n| known(n))
        .filter(|m| option_value(&text, m.option) == Some('m'))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let series = catalog
        .find(&kernel.series)
        .with_context(|| format!("kernel series {} is not in the catalog", kernel.series))?;
    let package = package_of_modules(series, kernel.arch, pinned)?;
    let query = archive::Query {
        what: format!("the modules of kernel {}", kernel.series),
        distribution: series.distribution(),
        suites: &series.suites,
        pattern: regex_lite::Regex::new(&format!(
            "^{}$",
            regex_lite::escape(&package.package.name)
        ))?,
        arch: kernel.arch,
    };
    let dir = modules_dir(config, &kernel.series, kernel.arch);
    // Every known module the config builds as one, not only those asked for: the cache
    // entry is the series', and a run that asks for another must find it there too.
    let picked: Vec<&KnownModule> = KNOWN
        .iter()
        .filter(|m| option_value(&text, m.option) == Some('m'))
        .collect();
    put_aside_if_stale(&dir, &picked)?;
    let record = archive::obtain(config, &query, &dir, false, Some(&package), |path| {
        pick(&picked, path)
    })?;
    record_sought(&dir, &picked)?;
    let mut files = Vec::new();
    for module in wanted {
        let file = record
            .files
            .keys()
            .find(|f| compression(f).0 == format!("{}.ko", module.name));
        match file {
            Some(file) => files.push((module.name.to_string(), dir.join(file))),
            None => crate::term::status(format!(
                "{} {} holds no {}.ko, though the kernel has {}=m: lessons that need it \
                 will say so",
                package.package.name, package.package.version, module.name, module.option
            )),
        }
    }
    Ok(files)
}

/// The package that holds the modules of the kernel pinned as `kernel`: its own, or the
/// one the catalog names beside it (`modules.<arch>`), pinned in the lock at the kernel's
/// version.
fn package_of_modules(
    series: &KernelSeries,
    arch: Arch,
    kernel: &Pinned,
) -> anyhow::Result<Pinned> {
    let Some(name) = series.modules_package(arch, &kernel.package.name) else {
        return Ok(kernel.clone());
    };
    let lock = pins::KernelLock::load(&pins::lock_path())?;
    lock.find_modules(&series.series, arch)
        .filter(|p| p.package.name == name && p.package.version == kernel.package.version)
        .cloned()
        .with_context(|| {
            format!(
                "{name} {}, which holds the modules of the pinned kernel {}, is not pinned in \
                 {}: run `bpflab kernels update {}` (only pinned files are used)",
                kernel.package.version,
                series.series,
                pins::lock_path().display(),
                series.series
            )
        })
}

/// The file in a modules entry that lists the modules sought when it was made: the
/// package may hold fewer (a kernel may build one in), and an entry is made
/// again only for a module it was not made for.
const SOUGHT: &str = "sought.txt";

/// Puts aside the record of the entry in `dir` if it was made before bpflab knew one of
/// `picked` (neither sought nor held), under the entry's lock, so that `obtain` makes it
/// again.
fn put_aside_if_stale(dir: &Path, picked: &[&KnownModule]) -> anyhow::Result<()> {
    let record = dir.join("record.json");
    if !record.exists() {
        return Ok(());
    }
    let sought = std::fs::read_to_string(dir.join(SOUGHT)).unwrap_or_default();
    let stale = picked.iter().any(|m| {
        !sought.lines().any(|l| l == m.name)
            && !["ko", "ko.xz", "ko.zst"]
                .iter()
                .any(|ext| dir.join(format!("{}.{ext}", m.name)).exists())
    });
    if !stale {
        return Ok(());
    }
    let parent = dir.parent().context("cache directory has no parent")?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _lock = crate::file_lock::acquire(parent, &name, "renewing a kernel's modules")?;
    std::fs::remove_file(&record).with_context(|| format!("removing {}", record.display()))
}

/// Notes in the entry in `dir` which modules it was made for (see [`SOUGHT`]).
fn record_sought(dir: &Path, picked: &[&KnownModule]) -> anyhow::Result<()> {
    let path = dir.join(SOUGHT);
    let text: String = picked.iter().map(|m| format!("{}\n", m.name)).collect();
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The cache entry of a series' modules.
fn modules_dir(config: &Config, series: &str, arch: Arch) -> PathBuf {
    crate::kernel::cache_dir(config, &format!("{series}.modules"), arch)
}

/// The output name of `path` in a kernel package if it is one of `modules`: e.g.
/// `lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/net/veth.ko` (or `.ko.xz`, and below
/// `usr/` in newer packages) is `veth.ko` (`veth.ko.xz`).
fn pick(modules: &[&KnownModule], path: &str) -> Option<String> {
    let rest = path.strip_prefix("usr/").unwrap_or(path);
    let rest = rest.strip_prefix("lib/modules/")?;
    let (release, inside) = rest.split_once('/')?;
    if release.is_empty() || release.starts_with('.') {
        return None;
    }
    modules.iter().find_map(|m| {
        let suffix = inside.strip_prefix(m.path)?;
        [".ko", ".ko.xz", ".ko.zst"]
            .contains(&suffix)
            .then(|| format!("{}{suffix}", m.name))
    })
}

/// A module file's name without its compression suffix, and the compression.
fn compression(file: &str) -> (&str, Option<&'static str>) {
    for suffix in ["xz", "zst"] {
        if let Some(base) = file.strip_suffix(&format!(".{suffix}")[..]) {
            return (base, Some(suffix));
        }
    }
    (file, None)
}

/// The most a module may decompress to: veth is 40 KiB; the largest modules are a few MiB.
const MODULE_LIMIT: u64 = 64 << 20;

/// The module's bytes as the kernel loads them: decompressed if the package kept it
/// compressed (`.ko.xz` in Debian's packages from trixie, `.ko.zst` in Ubuntu's from
/// 23.10), at most 64 MiB.
pub fn module_bytes(file: &Path) -> anyhow::Result<Vec<u8>> {
    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let mut out = Vec::new();
    let read = match compression(&name).1 {
        None => return Ok(raw),
        Some("xz") => xz2::read::XzDecoder::new(raw.as_slice())
            .take(MODULE_LIMIT + 1)
            .read_to_end(&mut out),
        Some(_) => crate::zstd::reader(raw.as_slice())
            .and_then(|d| d.take(MODULE_LIMIT + 1).read_to_end(&mut out)),
    };
    read.with_context(|| format!("decompressing {}", file.display()))?;
    anyhow::ensure!(
        out.len() as u64 <= MODULE_LIMIT,
        "{} decompresses to more than {MODULE_LIMIT} bytes: it is no kernel module",
        file.display()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_modules_asked_for_are_picked_by_their_own_name() {
        let veth = [known("veth").unwrap()];
        let pick = |p| pick(&veth, p);
        assert_eq!(
            pick("lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/net/veth.ko"),
            Some("veth.ko".into())
        );
        assert_eq!(
            pick("usr/lib/modules/6.12.1+deb13-amd64/kernel/drivers/net/veth.ko.xz"),
            Some("veth.ko.xz".into())
        );
        assert_eq!(
            pick("lib/modules/6.8.0-151-generic/kernel/drivers/net/veth.ko.zst"),
            Some("veth.ko.zst".into())
        );
        assert_eq!(pick("lib/modules/6.1/kernel/drivers/net/vethx.ko"), None);
        assert_eq!(pick("lib/modules/6.1/kernel/drivers/net/veth.ko.sig"), None);
        assert_eq!(pick("lib/modules/../kernel/drivers/net/veth.ko"), None);
        assert_eq!(pick("boot/veth.ko"), None);
        let tc = [known("sch_ingress").unwrap(), known("cls_bpf").unwrap()];
        let pick = |p| super::pick(&tc, p);
        assert_eq!(
            pick("lib/modules/6.1.0-56-cloud-amd64/kernel/net/sched/sch_ingress.ko"),
            Some("sch_ingress.ko".into())
        );
        assert_eq!(
            pick("usr/lib/modules/6.12.1+deb13-amd64/kernel/net/sched/cls_bpf.ko.xz"),
            Some("cls_bpf.ko.xz".into())
        );
        assert_eq!(pick("lib/modules/6.1/kernel/net/sched/cls_u32.ko"), None);
    }

    #[test]
    fn an_entry_is_made_again_only_for_a_module_it_was_not_made_for() {
        let entry = tempfile::tempdir().unwrap();
        let dir = entry.path().join("6.1.modules");
        std::fs::create_dir(&dir).unwrap();
        let record = dir.join("record.json");
        let veth = known("veth").unwrap();
        let tc = [veth, known("sch_ingress").unwrap()];
        // Made for veth alone, before sch_ingress was known: its record is put aside.
        std::fs::write(dir.join("veth.ko"), "").unwrap();
        std::fs::write(&record, "{}").unwrap();
        put_aside_if_stale(&dir, &[veth]).unwrap();
        assert!(record.exists());
        put_aside_if_stale(&dir, &tc).unwrap();
        assert!(!record.exists());
        // Made for both, from a package that holds neither: kept.
        std::fs::remove_file(dir.join("veth.ko")).unwrap();
        std::fs::write(&record, "{}").unwrap();
        record_sought(&dir, &tc).unwrap();
        put_aside_if_stale(&dir, &tc).unwrap();
        assert!(record.exists());
    }

    #[test]
    fn a_config_says_module_built_in_or_absent() {
        let config = "CONFIG_NET_NS=y\nCONFIG_VETH=m\n# CONFIG_MACVLAN is not set\n";
        assert_eq!(option_value(config, "CONFIG_VETH"), Some('m'));
        assert_eq!(option_value(config, "CONFIG_NET_NS"), Some('y'));
        assert_eq!(option_value(config, "CONFIG_MACVLAN"), None);
        assert_eq!(option_value(config, "CONFIG_NET"), None);
    }

    #[test]
    fn compressed_modules_are_unpacked_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let module = b"\x7fELF a module".repeat(100);
        let xz = dir.path().join("veth.ko.xz");
        let mut packed = Vec::new();
        xz2::read::XzEncoder::new(module.as_slice(), 6)
            .read_to_end(&mut packed)
            .unwrap();
        std::fs::write(&xz, packed).unwrap();
        let zst = dir.path().join("veth.ko.zst");
        std::fs::write(&zst, crate::zstd::compress(&module)).unwrap();
        let plain = dir.path().join("veth.ko");
        std::fs::write(&plain, &module).unwrap();
        for file in [&xz, &zst, &plain] {
            assert_eq!(module_bytes(file).unwrap(), module, "{}", file.display());
        }
        // A bomb: 65 MiB of zeros in a few KiB.
        let bomb = dir.path().join("bomb.ko.zst");
        let zeros = vec![0u8; (MODULE_LIMIT + (1 << 20)) as usize];
        std::fs::write(&bomb, crate::zstd::compress(&zeros)).unwrap();
        let error = format!("{:#}", module_bytes(&bomb).unwrap_err());
        assert!(error.contains("decompresses to more than"), "{error}");
    }
}
